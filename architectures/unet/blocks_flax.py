"""ADM U-Net blocks in Flax (guided-diffusion unet.py), shared by the 2D and video U-Nets.

Arrays are (N, H, W, C); a video runs with its frames folded into N = B * T, which makes every
3x3 conv a space-only 1x3x3 conv and every GroupNorm per frame.
Submodule names match blocks_torch.py so bench/convert.py transfers weights by name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import linen as nn

from architectures.layers_flax import ZERO, conv3x3, group_norm, upsample2
from architectures.row_dense import RowDense


def per_frame(e: jax.Array, n: int) -> jax.Array:
    """Repeat per-example rows (B, D) for the frames folded into n = B * T rows."""
    return e if e.shape[0] == n else jnp.repeat(e, n // e.shape[0], axis=0)


def avgpool2(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class Downsample(nn.Module):
    """Stride-2 3x3 conv (ADM Downsample with use_conv=True); spatial only."""

    channels: int

    @nn.compact
    def __call__(self, x, emb=None, train=False):
        return conv3x3(self.channels, stride=2, name="conv")(x)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 conv (ADM Upsample with use_conv=True); spatial only."""

    channels: int

    @nn.compact
    def __call__(self, x, emb=None, train=False):
        return conv3x3(self.channels, name="conv")(upsample2(x))


class ResBlock(nn.Module):
    """ADM ResBlock: GN-SiLU-conv, embedding (add or scale-shift), GN-SiLU-dropout-zero conv, skip."""

    cin: int
    cout: int
    groups: int
    dropout: float
    scale_shift: bool
    resample: str = "none"

    def _resample(self, x):
        return {"up": upsample2, "down": avgpool2}.get(self.resample, lambda a: a)(x)

    @nn.compact
    def __call__(self, x, emb, train=False):
        h = group_norm(self.groups, "in_norm")(x)
        h = conv3x3(self.cout, name="in_conv")(self._resample(nn.silu(h)))  # resample after SiLU, before the conv
        x = self._resample(x)
        e = nn.Dense(2 * self.cout if self.scale_shift else self.cout, name="emb_proj")(nn.silu(emb))
        e = per_frame(e, h.shape[0])[:, None, None, :]
        out_norm = group_norm(self.groups, "out_norm")
        if self.scale_shift:  # FiLM, ADM Sec. 3 "adaptive group normalization"
            scale, shift = jnp.split(e, 2, axis=-1)
            h = out_norm(h) * (1 + scale) + shift
        else:
            h = out_norm(h + e)
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
        h = conv3x3(self.cout, zero=True, name="out_conv")(h)
        if self.cin != self.cout:
            x = nn.Conv(self.cout, (1, 1), name="skip")(x)
        return x + h


class Attention(nn.Module):
    """ADM AttentionBlock: GN -> qkv -> multi-head attention -> zero proj -> residual.

    Spatial: tokens are the H*W pixels of each frame. Temporal (`frames` > 0): tokens are the
    frames of each pixel, with a learned relative position bias per head and frame offset
    (Ho et al. 2022, Sec. 3) and an optional (B, T, T) boolean mask of allowed pairs.
    """

    channels: int
    heads: int
    groups: int
    new_order: bool
    frames: int = 0

    def _bias(self):
        table = self.param("rel_bias", nn.initializers.zeros, (self.heads, 2 * self.frames - 1))
        offsets = jnp.arange(self.frames)
        return table[:, offsets[:, None] - offsets[None, :] + self.frames - 1][None]  # (1, heads, T, T): i - j

    @nn.compact
    def __call__(self, x, mask=None):
        hh, ww = x.shape[1:3]
        h = group_norm(self.groups, "norm")(x)
        if self.frames:
            tokens = rearrange(h, "(b t) h w c -> (b h w) t c", t=self.frames)
        else:
            tokens = rearrange(h, "n h w c -> n (h w) c")
        split = "(three h d)" if self.new_order else "(h three d)"  # ADM QKVAttention vs QKVAttentionLegacy
        qkv = RowDense(3 * self.channels, name="qkv")(tokens)
        q, k, v = rearrange(qkv, f"n l {split} -> three n l h d", three=3, h=self.heads)
        bias = self._bias() if self.frames else None
        if mask is not None:
            mask = jnp.repeat(mask, hh * ww, axis=0)[:, None]  # one row per (example, pixel)
        out = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask)
        out = RowDense(self.channels, name="proj", **ZERO)(rearrange(out, "n l h d -> n l (h d)"))
        if self.frames:
            out = rearrange(out, "(b h w) t c -> (b t) h w c", h=hh, w=ww)
        else:
            out = rearrange(out, "n (h w) c -> n h w c", h=hh)
        return x + out


class SpaceTimeAttention(nn.Module):
    """Video attention block: spatial attention per frame, then temporal attention per pixel."""

    channels: int
    heads: int
    groups: int
    new_order: bool
    frames: int

    @nn.compact
    def __call__(self, x, mask=None):
        args = (self.channels, self.heads, self.groups, self.new_order)
        x = Attention(*args, name="spatial")(x)
        return Attention(*args, frames=self.frames, name="temporal")(x, mask)
