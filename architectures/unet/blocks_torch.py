"""ADM U-Net blocks in PyTorch (guided-diffusion unet.py), shared by the 2D and video U-Nets.

Tensors are (N, C, H, W); a video runs with its frames folded into N = B * T, which makes every
3x3 conv a space-only 1x3x3 conv and every GroupNorm per frame.
Submodule names match blocks_flax.py so bench/convert.py transfers weights by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from architectures.layers_torch import conv3x3, upsample2, zero_


def per_frame(e: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat per-example rows (B, D) for the frames folded into n = B * T rows."""
    return e if e.shape[0] == n else torch.repeat_interleave(e, n // e.shape[0], dim=0)


class Downsample(nn.Module):
    """Stride-2 3x3 conv (ADM Downsample with use_conv=True); spatial only."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels, stride=2)

    def forward(self, x, emb=None):
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 conv (ADM Upsample with use_conv=True); spatial only."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x, emb=None):
        return self.conv(upsample2(x))


class ResBlock(nn.Module):
    """ADM ResBlock: GN-SiLU-conv, embedding (add or scale-shift), GN-SiLU-dropout-zero conv, skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float, scale_shift: bool,
                 resample: str = "none"):
        super().__init__()
        self.resample, self.scale_shift = resample, scale_shift
        self.in_norm = nn.GroupNorm(groups, cin)
        self.in_conv = conv3x3(cin, cout)
        self.emb_proj = nn.Linear(emb_dim, 2 * cout if scale_shift else cout)
        self.out_norm = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_(conv3x3(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def _resample(self, x):
        if self.resample == "up":
            return upsample2(x)
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x, emb):
        h = self.in_conv(self._resample(F.silu(self.in_norm(x))))  # resample after SiLU, before the conv
        x = self._resample(x)
        e = per_frame(self.emb_proj(F.silu(emb)), h.shape[0])[:, :, None, None]
        if self.scale_shift:  # FiLM, ADM Sec. 3 "adaptive group normalization"
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        h = self.out_conv(self.dropout(F.silu(h)))
        return (x if self.skip is None else self.skip(x)) + h


class Attention(nn.Module):
    """ADM AttentionBlock: GN -> qkv -> multi-head attention -> zero proj -> residual.

    Spatial: tokens are the H*W pixels of each frame. Temporal (`frames` > 0): tokens are the
    frames of each pixel, with a learned relative position bias per head and frame offset
    (Ho et al. 2022, Sec. 3) and an optional (B, T, T) boolean mask of allowed pairs.
    """

    def __init__(self, channels: int, heads: int, groups: int, new_order: bool, frames: int = 0):
        super().__init__()
        self.heads, self.new_order, self.frames = heads, new_order, frames
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_(nn.Linear(channels, channels))
        if frames:
            self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * frames - 1))

    def _bias(self, mask, pixels: int):
        offsets = torch.arange(self.frames, device=self.rel_bias.device)
        bias = self.rel_bias[:, offsets[:, None] - offsets[None, :] + self.frames - 1]  # (heads, T, T): i - j
        if mask is None:
            return bias[None]
        bias = bias[None].masked_fill(~mask[:, None], float("-inf"))  # (B, heads, T, T)
        return torch.repeat_interleave(bias, pixels, dim=0)  # one row per (example, pixel)

    def forward(self, x, mask=None):
        hh, ww = x.shape[-2:]
        h = self.norm(x)
        if self.frames:
            tokens = rearrange(h, "(b t) c h w -> (b h w) t c", t=self.frames)
        else:
            tokens = rearrange(h, "n c h w -> n (h w) c")
        split = "(three h d)" if self.new_order else "(h three d)"  # ADM QKVAttention vs QKVAttentionLegacy
        q, k, v = rearrange(self.qkv(tokens), f"n l {split} -> three n h l d", three=3, h=self.heads)
        bias = self._bias(mask, hh * ww) if self.frames else None
        out = self.proj(rearrange(F.scaled_dot_product_attention(q, k, v, attn_mask=bias), "n h l d -> n l (h d)"))
        if self.frames:
            out = rearrange(out, "(b h w) t c -> (b t) c h w", h=hh, w=ww)
        else:
            out = rearrange(out, "n (h w) c -> n c h w", h=hh)
        return x + out


class SpaceTimeAttention(nn.Module):
    """Video attention block: spatial attention per frame, then temporal attention per pixel."""

    def __init__(self, channels: int, heads: int, groups: int, new_order: bool, frames: int):
        super().__init__()
        self.spatial = Attention(channels, heads, groups, new_order)
        self.temporal = Attention(channels, heads, groups, new_order, frames)

    def forward(self, x, mask=None):
        return self.temporal(self.spatial(x), mask)
