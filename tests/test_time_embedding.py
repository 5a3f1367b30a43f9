"""The shared sinusoidal time embedding (architectures/layers_torch.py, layers_flax.py) as each
family calls it, in both backends, against that family's official formula written out in numpy:
ADM (guided-diffusion nn.timestep_embedding), DiT (models.py TimestepEmbedder.timestep_embedding)
and ml-mdm (models/unet.py create_temporal_embedding). RIN's time code: tests/test_rin.py.
Each check reads the embedding where the model consumes it, so a swapped sin/cos order at a call
site or in the shared function fails here."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import linen as nn

from architectures import registry
from architectures.dit import dit_flax, dit_torch
from architectures.layers_flax import timestep_embedding as embedding_flax
from architectures.layers_torch import timestep_embedding as embedding_torch
from architectures.nested_unet import blocks_flax as mdm_flax
from architectures.nested_unet import blocks_torch as mdm_torch
from architectures.unet.unet_flax import UNet as FlaxUNet
from architectures.unet.unet_torch import UNet as TorchUNet

STEPS = np.array([0, 1, 17, 250, 999], np.float32)
ATOL = 2e-4  # float32 sin/cos of arguments up to ~1000 rad


def adm_official(t: np.ndarray, dim: int, max_period: float = 10000.0) -> np.ndarray:
    """guided-diffusion: half = dim // 2, freqs exp(-ln(max_period) i / half), [cos | sin], a zero column if dim is odd."""
    half = dim // 2
    args = t.astype(np.float64)[:, None] * np.exp(-np.log(max_period) * np.arange(half) / half)[None]
    emb = np.concatenate([np.cos(args), np.sin(args)], axis=-1)
    return np.concatenate([emb, np.zeros((len(t), dim % 2))], axis=-1)


def dit_official(t: np.ndarray, dim: int, max_period: float = 10000.0) -> np.ndarray:
    """DiT TimestepEmbedder.timestep_embedding (GLIDE's): the same [cos | sin] construction as ADM."""
    half = dim // 2
    freqs = np.exp(-np.log(max_period) * np.arange(half, dtype=np.float64) / half)
    args = t.astype(np.float64)[:, None] * freqs[None]
    emb = np.concatenate([np.cos(args), np.sin(args)], axis=-1)
    return np.concatenate([emb, np.zeros_like(emb[:, :1])], axis=-1) if dim % 2 else emb


def mdm_official(t: np.ndarray, temporal_dim: int) -> np.ndarray:
    """ml-mdm: half = temporal_dim // 8, t_emb = exp(-(ln 10^4 / half) i), [sin | cos] (width temporal_dim // 4)."""
    half = temporal_dim // 8
    args = t.astype(np.float64)[:, None] * np.exp(np.arange(half) * -(np.log(10000.0) / half))[None]
    return np.concatenate([np.sin(args), np.cos(args)], axis=1)


def _first_layer_input_torch(layer: torch.nn.Module, call) -> np.ndarray:
    seen = []
    handle = layer.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        with torch.no_grad():
            call()
    finally:
        handle.remove()
    return seen[0].numpy()


def _first_layer_input_flax(name: str, call) -> np.ndarray:
    seen = []

    def grab(next_fun, args, kwargs, context):
        if context.module.name == name and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
        call()
    return np.asarray(seen[0])


@pytest.mark.parametrize("dim", [7, 10, 16])
@pytest.mark.parametrize("max_period", [10000.0, 1000.0])
def test_shared_embedding_is_adms_in_both_backends(dim, max_period):
    want = adm_official(STEPS, dim, max_period)
    got_t = embedding_torch(torch.from_numpy(STEPS), dim, max_period).numpy()
    got_f = np.asarray(embedding_flax(jnp.asarray(STEPS), dim, max_period))
    np.testing.assert_allclose(got_t, want, atol=ATOL)
    np.testing.assert_allclose(got_f, want, atol=ATOL)


def test_adm_unet_embeds_time_as_adm_in_both_backends():
    cfg = registry.get("unet2d").preset("unet2d-tiny").config
    t = STEPS / 1000 if cfg.time_scaling != 1 else STEPS  # the model's own time input
    want = adm_official(t * np.float32(cfg.time_scaling), cfg.model_channels)
    model = TorchUNet(cfg).eval()
    got_t = _first_layer_input_torch(model.time_in, lambda: model.embed(torch.from_numpy(t), None))
    flax_model, tj = FlaxUNet(cfg), jnp.asarray(t)
    params = flax_model.init(jax.random.PRNGKey(0), tj, None, method=FlaxUNet.embed)
    got_f = _first_layer_input_flax("time_in", lambda: flax_model.apply(params, tj, None, method=FlaxUNet.embed))
    np.testing.assert_allclose(got_t, want, atol=ATOL)
    np.testing.assert_allclose(got_f, want, atol=ATOL)


def test_dit_embeds_time_as_the_official_timestep_embedder_in_both_backends():
    cfg = registry.get("dit").preset("dit-tiny").config
    want = dit_official(STEPS * np.float32(cfg.time_scaling), cfg.frequency_embedding_size)
    embedder = dit_torch.TimestepEmbedder(cfg)
    got_t = _first_layer_input_torch(embedder.fc1, lambda: embedder(torch.from_numpy(STEPS)))
    flax_embedder, tj = dit_flax.TimestepEmbedder(cfg), jnp.asarray(STEPS)
    params = flax_embedder.init(jax.random.PRNGKey(0), tj)
    got_f = _first_layer_input_flax("fc1", lambda: flax_embedder.apply(params, tj))
    np.testing.assert_allclose(got_t, want, atol=ATOL)
    np.testing.assert_allclose(got_f, want, atol=ATOL)


@pytest.mark.parametrize("temporal_dim", [64, 768, 1024])
def test_nested_unet_embeds_time_as_ml_mdm_in_both_backends(temporal_dim):
    want = mdm_official(STEPS, temporal_dim)
    embed = mdm_torch.Embed(temporal_dim)
    got_t = _first_layer_input_torch(embed.fc_in, lambda: embed(torch.from_numpy(STEPS)))
    flax_embed, tj = mdm_flax.Embed(temporal_dim), jnp.asarray(STEPS)
    params = flax_embed.init(jax.random.PRNGKey(0), tj)
    got_f = _first_layer_input_flax("fc_in", lambda: flax_embed.apply(params, tj))
    assert got_t.shape == got_f.shape == (len(STEPS), temporal_dim // 4)
    np.testing.assert_allclose(got_t, want, atol=ATOL)
    np.testing.assert_allclose(got_f, want, atol=ATOL)
