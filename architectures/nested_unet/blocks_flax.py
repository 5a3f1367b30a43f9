"""ml-mdm U-Net blocks in Flax (ml-mdm models/unet.py), channels-last.

See blocks_torch.py for how they differ from ADM's. Submodule names match blocks_torch.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import linen as nn

from architectures.layers_flax import ZERO, conv3x3, group_norm, timestep_embedding, upsample2

EPS = 1e-5  # torch's LayerNorm default


def sinusoid(t: jax.Array, dim: int) -> jax.Array:
    """ml-mdm's [sin | cos] of (B,) values at dim // 8 frequencies 10000^(-i / (dim // 8)): width dim // 4."""
    return timestep_embedding(t, 2 * (dim // 8), sin_first=True)


def conv1x1(cout: int, zero: bool = False, name: str | None = None) -> nn.Conv:
    return nn.Conv(cout, (1, 1), name=name, **(ZERO if zero else {}))


class Embed(nn.Module):
    """Linear -> SiLU -> Linear of the sinusoid (time; resolution micro-conditioning with zero_out)."""

    dim: int
    zero_out: bool = False

    @nn.compact
    def __call__(self, t):
        h = nn.silu(nn.Dense(self.dim, name="fc_in")(sinusoid(t, self.dim)))
        return nn.Dense(self.dim, name="fc_out", **(ZERO if self.zero_out else {}))(h)


# The same arithmetic as ADM's ResBlock with scale-shift (architectures/unet), kept apart because
# the parameter names are ml-mdm's (norm1/conv1/time_layer/norm2/conv2, the canonical weight names)
# and ADM's block also resamples inside and has an additive (no scale-shift) mode.
class ResNet(nn.Module):
    """GN -> SiLU -> conv3x3 -> GN -> x (1 + a) + b -> SiLU -> dropout -> zero conv3x3, + skip."""

    cin: int
    cout: int
    groups: int
    dropout: float

    @nn.compact
    def __call__(self, x, temb, train=False):
        h = conv3x3(self.cout, name="conv1")(nn.silu(group_norm(self.groups, "norm1")(x)))
        a, b = jnp.split(nn.Dense(2 * self.cout, name="time_layer")(nn.silu(temb))[:, None, None, :], 2, axis=-1)
        h = nn.silu(group_norm(self.groups, "norm2")(h) * (1 + a) + b)
        h = conv3x3(self.cout, zero=True, name="conv2")(nn.Dropout(self.dropout, deterministic=not train)(h))
        return h + (x if self.cin == self.cout else conv1x1(self.cout, name="skip")(x))


class Attention(nn.Module):
    """GN -> 1x1 qkv -> heads; + attention from the same queries to LN(tokens) -> kv (added);
    zero 1x1 proj_out; residual; optional FFN GN -> 1x1 4x -> GELU -> zero 1x1, residual."""

    channels: int
    heads: int
    groups: int
    token_dim: int
    ffn: bool

    @nn.compact
    def __call__(self, x, tokens=None, mask=None):
        hh = x.shape[1]
        qkv = conv1x1(3 * self.channels, name="qkv")(group_norm(self.groups, "norm")(x))
        q, k, v = rearrange(qkv, "b y x (three h d) -> three b (y x) h d", three=3, h=self.heads)
        out = jax.nn.dot_product_attention(q, k, v)
        if self.token_dim:
            kv = nn.Dense(2 * self.channels, name="kv_cond")(nn.LayerNorm(epsilon=EPS, name="norm_cond")(tokens))
            kc, vc = rearrange(kv, "b l (two h d) -> two b l h d", two=2, h=self.heads)
            allowed = None if mask is None else (mask != 0)[:, None, None, :]
            out = out + jax.nn.dot_product_attention(q, kc, vc, mask=allowed)
        x = x + conv1x1(self.channels, zero=True, name="proj_out")(rearrange(out, "b (y x) h d -> b y x (h d)", y=hh))
        if self.ffn:
            h = conv1x1(4 * self.channels, name="ffn_in")(group_norm(self.groups, "ffn_norm")(x))
            x = x + conv1x1(self.channels, zero=True, name="ffn_out")(nn.gelu(h, approximate=False))
        return x


class Block(nn.Module):
    """ml-mdm ResNetBlock: n x (ResNet + `attn` attentions), then an optional resampler."""

    cins: tuple[int, ...]
    cout: int
    attn_per: int
    mode: str  # "none" | "down" | "up"
    heads: int
    groups: int
    dropout: float
    token_dim: int
    ffn: bool

    def setup(self):
        self.resnets = [ResNet(c, self.cout, self.groups, self.dropout) for c in self.cins]
        self.attn = [Attention(self.cout, self.heads, self.groups, self.token_dim, self.ffn)
                     for _ in range(len(self.cins) * self.attn_per)]
        self.resample = None if self.mode == "none" else conv3x3(self.cout, stride=2 if self.mode == "down" else 1)

    def __call__(self, x, temb, tokens=None, mask=None, skips=None, train=False):
        outs = []
        for i, resnet in enumerate(self.resnets):
            if skips is not None:
                x = jnp.concatenate([x, skips.pop()], axis=-1)
            x = resnet(x, temb, train)
            for j in range(self.attn_per):
                x = self.attn[i * self.attn_per + j](x, tokens, mask)
            outs.append(x)
        if self.mode == "up":
            x = self.resample(upsample2(x))
        elif self.mode == "down":
            x = self.resample(x)
            outs.append(x)
        return x, outs
