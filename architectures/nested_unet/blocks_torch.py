"""ml-mdm U-Net blocks in PyTorch (ml-mdm models/unet.py), channels-first.

They differ from ADM's (architectures/unet): the time embedding is [sin | cos] of temporal_dim/8
frequencies; the ResNet has ml-mdm's parameter names and never resamples; attention projects qkv
with a 1x1 conv, adds a cross-attention to conditioning tokens to the self-attention output and
may add an FFN. Submodule names match blocks_flax.py so bench/convert.py transfers weights by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from architectures.layers_torch import conv3x3, timestep_embedding, upsample2, zero_


def sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """ml-mdm's [sin | cos] of (B,) values at dim // 8 frequencies 10000^(-i / (dim // 8)): width dim // 4."""
    return timestep_embedding(t, 2 * (dim // 8), sin_first=True)


class Embed(nn.Module):
    """Linear -> SiLU -> Linear of the sinusoid (the time embedding, and the resolution
    micro-conditioning, whose second layer starts at zero)."""

    def __init__(self, dim: int, zero_out: bool = False):
        super().__init__()
        self.dim = dim
        self.fc_in, self.fc_out = nn.Linear(dim // 4, dim), nn.Linear(dim, dim)
        if zero_out:
            zero_(self.fc_out)

    def forward(self, t):
        return self.fc_out(F.silu(self.fc_in(sinusoid(t, self.dim))))


# The same arithmetic as ADM's ResBlock with scale-shift (architectures/unet), kept apart because
# the parameter names are ml-mdm's (norm1/conv1/time_layer/norm2/conv2, the canonical weight names)
# and ADM's block also resamples inside and has an additive (no scale-shift) mode.
class ResNet(nn.Module):
    """GN -> SiLU -> conv3x3 -> GN -> x (1 + a) + b -> SiLU -> dropout -> zero conv3x3, + skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), conv3x3(cin, cout)
        self.time_layer = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.dropout = nn.GroupNorm(groups, cout), nn.Dropout(dropout)
        self.conv2 = zero_(conv3x3(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        a, b = self.time_layer(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h) * (1 + a) + b)))
        return h + (x if self.skip is None else self.skip(x))


class Attention(nn.Module):
    """GN -> 1x1 qkv -> heads; + attention from the same queries to LN(tokens) -> kv (added);
    zero 1x1 proj_out; residual; optional FFN GN -> 1x1 4x -> GELU -> zero 1x1, residual."""

    def __init__(self, channels: int, heads: int, groups: int, token_dim: int, ffn: bool):
        super().__init__()
        self.heads = heads
        self.norm, self.qkv = nn.GroupNorm(groups, channels), nn.Conv2d(channels, 3 * channels, 1)
        if token_dim:
            self.norm_cond, self.kv_cond = nn.LayerNorm(token_dim), nn.Linear(token_dim, 2 * channels)
        self.proj_out = zero_(nn.Conv2d(channels, channels, 1))
        if ffn:
            self.ffn_norm, self.ffn_in = nn.GroupNorm(groups, channels), nn.Conv2d(channels, 4 * channels, 1)
            self.ffn_out = zero_(nn.Conv2d(4 * channels, channels, 1))
        self.token_dim, self.ffn = token_dim, ffn

    def forward(self, x, tokens=None, mask=None):
        hh = x.shape[-2]
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three h d) y x -> three b h (y x) d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        if self.token_dim:
            kc, vc = rearrange(self.kv_cond(self.norm_cond(tokens)), "b l (two h d) -> two b h l d", two=2, h=self.heads)
            bias = None if mask is None else torch.zeros_like(mask).masked_fill(mask == 0, float("-inf"))[:, None, None]
            out = out + F.scaled_dot_product_attention(q, kc, vc, attn_mask=bias)
        x = x + self.proj_out(rearrange(out, "b h (y x) d -> b (h d) y x", y=hh))
        if self.ffn:
            x = x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))
        return x


class Block(nn.Module):
    """ml-mdm ResNetBlock: n x (ResNet + `attn` attentions), then an optional resampler. The up
    path concatenates one skip before each ResNet; every output is kept as a skip on the way down."""

    def __init__(self, cins: list[int], cout: int, emb_dim: int, attn: int, resample: str, *, heads: int,
                 groups: int, dropout: float, token_dim: int, ffn: bool):
        super().__init__()
        self.attn_per = attn
        self.resnets = nn.ModuleList(ResNet(c, cout, emb_dim, groups, dropout) for c in cins)
        self.attn = nn.ModuleList(Attention(cout, heads, groups, token_dim, ffn) for _ in range(len(cins) * attn))
        self.resample, self.mode = (conv3x3(cout, cout, stride=2 if resample == "down" else 1)
                                    if resample != "none" else None), resample

    def forward(self, x, temb, tokens=None, mask=None, skips=None):
        outs = []
        for i, resnet in enumerate(self.resnets):
            if skips is not None:
                x = torch.cat([x, skips.pop()], dim=1)
            x = resnet(x, temb)
            for j in range(self.attn_per):
                x = self.attn[i * self.attn_per + j](x, tokens, mask)
            outs.append(x)
        if self.mode == "up":
            x = self.resample(upsample2(x))
        elif self.mode == "down":
            x = self.resample(x)
            outs.append(x)
        return x, outs
