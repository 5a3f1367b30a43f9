"""Layers written once for every Flax model: the sinusoidal time embedding, 3x3 convs, zero init,
GroupNorm at torch's eps and nearest 2x upsampling. Same names as layers_torch.py, except that
zero init is the `ZERO` initializers (torch zeroes a built module with `zero_`)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

GN_EPS = 1e-5  # torch.nn.GroupNorm's default, as in ADM's GroupNorm32 and ml-mdm
ZERO = dict(kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0, sin_first: bool = False) -> jax.Array:
    """Sinusoid of (B,) values at dim // 2 frequencies max_period^(-i / (dim // 2)) (Vaswani et al.
    2017), an odd dim padded with a zero column. [cos | sin] for GLIDE, ADM and DiT; [sin | cos]
    (sin_first) for ml-mdm and RIN."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t).astype(jnp.float32)[:, None] * freqs[None]
    pair = (jnp.sin(args), jnp.cos(args)) if sin_first else (jnp.cos(args), jnp.sin(args))
    return jnp.pad(jnp.concatenate(pair, axis=-1), ((0, 0), (0, dim % 2)))


def conv3x3(cout: int, stride: int = 1, zero: bool = False, name: str | None = None) -> nn.Conv:
    return nn.Conv(cout, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)), name=name, **(ZERO if zero else {}))


def group_norm(groups: int, name: str | None = None) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=groups, epsilon=GN_EPS, name=name)


def upsample2(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling of (N, H, W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
