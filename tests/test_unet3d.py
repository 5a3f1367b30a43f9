"""Video U-Net (Ho et al. 2022): transfer parity, temporal masking, frame conditioning, the
relative position bias against a numpy reference, and analytic MACs against FlopCounterMode."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from architectures.unet import flops
from architectures.unet.blocks_torch import Attention
from architectures.unet.config import PRESETS_3D
from tests.unet_cases import (canonical_inputs, flax_params_from, randomized_torch, relative_error, run_flax, run_torch,
                              torch_macs)

TINY = PRESETS_3D["unet3d-tiny"].config  # 4 frames: 1 context + 3 predicted
VARIANTS = {
    "tiny-context": TINY,
    "no-context-updown-masked": dataclasses.replace(  # class-conditional; TINY is not
        TINY, cond_frames=0, num_classes=5, independent_frames=True, resblock_updown=True, use_scale_shift_norm=False,
        num_head_channels=8, use_new_attention_order=True, learn_sigma=True,
        process=dataclasses.replace(TINY.process, timesteps=1000)),  # learned variance: discrete time
}
PER_EXAMPLE = np.array([True, False])  # example 0: independent frames (an image batch), example 1: a video
NO_MASK = np.array([False, False])  # same compiled Flax function as PER_EXAMPLE, no masking


@pytest.fixture(scope="module")
def tiny():
    """A random torch model, its Flax params, and inputs for TINY."""
    model = randomized_torch(TINY, seed=3)
    inputs = canonical_inputs(TINY, 2, seed=4)
    return model, flax_params_from(model, TINY, inputs), inputs


def test_torch_to_flax_parity(tiny):
    model, params, inputs = tiny
    expected = run_torch(model, inputs)
    assert expected.shape == (2, TINY.out_frames, 16, 16, TINY.out_channels)
    assert np.abs(expected).max() > 1e-2
    assert relative_error(run_flax(TINY, params, inputs, independent_frames=NO_MASK), expected) < 1e-5


def test_torch_to_flax_parity_masked_variant():
    cfg = VARIANTS["no-context-updown-masked"]
    inputs = canonical_inputs(cfg, 2, seed=1)
    model = randomized_torch(cfg)
    expected = run_torch(model, inputs)
    assert expected.shape == (2, cfg.frames, 16, 16, cfg.out_channels)
    assert relative_error(run_flax(cfg, flax_params_from(model, cfg, inputs), inputs), expected) < 1e-5


def test_per_example_mask_parity(tiny):
    model, params, inputs = tiny
    expected = run_torch(model, inputs, independent_frames=torch.from_numpy(PER_EXAMPLE))
    got = run_flax(TINY, params, inputs, independent_frames=PER_EXAMPLE)
    assert relative_error(got, expected) < 1e-5
    assert relative_error(expected, run_torch(model, inputs)) > 1e-3  # the mask changes example 0


def perturb_frame(inputs: dict, frame: int) -> dict:
    x = inputs["x"].copy()
    x[:, frame] += 1.0
    return {**inputs, "x": x}


def frame_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Max |a - b| per (example, frame)."""
    return np.abs(a - b).max(axis=(2, 3, 4))


def test_masking_makes_frames_independent_torch(tiny):
    model, _, inputs = tiny
    changed = perturb_frame(inputs, 1)
    masked = frame_change(run_torch(model, inputs, independent_frames=True),
                          run_torch(model, changed, independent_frames=True))
    assert np.all(masked[:, [0, 2]] < 1e-6) and np.all(masked[:, 1] > 1e-3)
    unmasked = frame_change(run_torch(model, inputs), run_torch(model, changed))
    assert np.all(unmasked > 1e-3)


def test_per_example_masking_flax(tiny):
    _, params, inputs = tiny
    changed = perturb_frame(inputs, 1)
    diff = frame_change(run_flax(TINY, params, inputs, independent_frames=PER_EXAMPLE),
                        run_flax(TINY, params, changed, independent_frames=PER_EXAMPLE))
    assert np.all(diff[0, [0, 2]] < 1e-6) and diff[0, 1] > 1e-3  # masked example
    assert np.all(diff[1] > 1e-3)  # video example: every frame sees frame 1


def test_context_conditions_the_prediction(tiny):
    model, _, inputs = tiny
    other = {**inputs, "context": inputs["context"] + 1.0}
    assert np.all(frame_change(run_torch(model, inputs), run_torch(model, other)) > 1e-3)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 3, TINY.out_frames, 16, 16), torch.zeros(1))


def test_temporal_attention_matches_reference():
    """Per pixel over frames, logits + b[head, i - j] (Ho et al. 2022, relative position bias)."""
    torch.manual_seed(0)
    frames, heads, ch = 3, 2, 4
    block = Attention(ch, heads=heads, groups=1, new_order=True, frames=frames)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.7)
        x = torch.randn(2 * frames, ch, 2, 2)  # (B*T, C, H, W)
        got = block(x).numpy()
        tokens = block.norm(x).numpy().reshape(2, frames, ch, 4).transpose(0, 3, 1, 2)  # (B, HW, T, C)
    w = {n: p.detach().numpy() for n, p in block.named_parameters()}
    q, k, v = np.split(tokens @ w["qkv.weight"].T + w["qkv.bias"], 3, axis=-1)
    split = lambda a: a.reshape(*a.shape[:-1], heads, ch // heads)  # noqa: E731
    logits = np.einsum("bpihd,bpjhd->bphij", split(q), split(k)) / math.sqrt(ch // heads)
    offsets = np.arange(frames)[:, None] - np.arange(frames)[None, :]
    logits = logits + w["rel_bias"][:, offsets + frames - 1]
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bphij,bpjhd->bpihd", weights, split(v)).reshape(2, 4, frames, ch)
    out = out @ w["proj.weight"].T + w["proj.bias"]
    expected = x.numpy() + out.transpose(0, 2, 3, 1).reshape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_analytic_macs_equal_flop_counter(name):
    cfg = VARIANTS[name]
    macs = flops.forward_macs(cfg, 2)
    assert all(v > 0 for v in macs.values())
    assert sum(macs.values()) == torch_macs(cfg)


def test_vdm_kinetics_inputs():
    cfg = PRESETS_3D["vdm-kinetics"].config
    shapes = cfg.input_shapes(2)
    assert shapes["x"][0] == (2, 11, 64, 64, 3) and shapes["context"][0] == (2, 5, 64, 64, 3)
    assert cfg.modality == "video" and cfg.net_in_channels == 7 and "y" not in shapes
