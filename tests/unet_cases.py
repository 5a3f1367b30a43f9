"""Helpers shared by tests/test_unet.py and tests/test_unet3d.py: inputs, random weights, both backends."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from architectures.unet.config import UNetConfig
from architectures.unet.unet_flax import UNet as FlaxUNet
from architectures.unet.unet_torch import UNet as TorchUNet
from bench.convert import torch_to_flax


def canonical_inputs(cfg: UNetConfig, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random channels-last inputs following cfg.input_shapes (labels in [0, num_classes))."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, dtype) in cfg.input_shapes(batch).items():
        if name == "y":
            out[name] = rng.integers(0, cfg.num_classes, shape).astype(dtype)
        elif name == "t":
            out[name] = rng.uniform(0, 1, shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def torch_inputs(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Channels-last -> channels-first for x and context."""
    moved = {k: np.moveaxis(v, -1, 1) if k in ("x", "context") else v for k, v in inputs.items()}
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in moved.items()}


def to_channels_last(out: torch.Tensor) -> np.ndarray:
    return np.moveaxis(out.detach().numpy(), 1, -1)


def randomized_torch(cfg: UNetConfig, seed: int = 0) -> TorchUNet:
    """A torch model with every parameter random, zero-initialized layers included (so they are tested)."""
    torch.manual_seed(seed)
    model = TorchUNet(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            std = np.prod(p.shape[1:]) ** -0.5 if p.ndim >= 2 else 0.3
            p.normal_(0.0, float(std))
    return model


def run_torch(model: TorchUNet, inputs: dict[str, np.ndarray], **kwargs) -> np.ndarray:
    with torch.no_grad():
        return to_channels_last(model(**torch_inputs(inputs), **kwargs))


def flax_params_from(model: TorchUNet, cfg: UNetConfig, inputs: dict[str, np.ndarray]) -> dict:
    abstract = jax.eval_shape(lambda: FlaxUNet(cfg).init(jax.random.PRNGKey(0), **flax_inputs(inputs)))
    return torch_to_flax(model.state_dict(), abstract["params"])


def flax_inputs(inputs: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in inputs.items()}


@functools.lru_cache(maxsize=None)
def _jitted_apply(cfg: UNetConfig, train: bool, independent):
    """One compiled forward per (config, mode): op-by-op Flax is slow on a shared CPU."""
    def apply(params, inputs, rngs, mask):
        ind = mask if independent == "array" else independent
        return FlaxUNet(cfg).apply({"params": params}, **inputs, train=train, independent_frames=ind, rngs=rngs)
    return jax.jit(apply)


def run_flax(cfg: UNetConfig, params: dict, inputs: dict[str, np.ndarray], train: bool = False, rngs=None,
             independent_frames=None) -> np.ndarray:
    mode = "array" if isinstance(independent_frames, np.ndarray) else independent_frames
    fn = _jitted_apply(cfg, train, mode)
    return np.asarray(fn(params, flax_inputs(inputs), rngs or {}, independent_frames if mode == "array" else None))


def init_flax(cfg: UNetConfig, inputs: dict[str, np.ndarray], seed: int = 0) -> tuple[np.ndarray, dict]:
    """(output, params) of a fresh Flax model in one compile; the rbg key compiles ~3x faster than
    threefry for a U-Net's many initializers."""
    key = jax.random.key(seed, impl="unsafe_rbg")
    out, variables = jax.jit(FlaxUNet(cfg).init_with_output)(key, **flax_inputs(inputs))
    return np.asarray(out), variables["params"]


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def torch_macs(cfg: UNetConfig, batch: int = 2, **kwargs) -> int:
    inputs = torch_inputs(canonical_inputs(cfg, batch))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        TorchUNet(cfg)(**inputs, **kwargs)
    return counter.get_total_flops() // 2  # the counter reports 2 FLOPs per multiply-accumulate
