"""SongUNet (DDPM++ / NCSN++, Song et al. 2021) as EDM's training/networks.py builds it, Flax.

Channels-last: x (B, H, W, C). Class and submodule names match songunet_torch.py (EDM's names:
`enc/16x16_block0/conv0/kernel` is torch's `enc.16x16_block0.conv0.weight`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from architectures.songunet import layout
from architectures.songunet.config import SongUNetConfig, norm_groups

SKIP_SCALE = math.sqrt(0.5)  # EDM SongUNet: every residual sum is scaled by sqrt(1/2)
EPS = 1e-6  # GroupNorm epsilon in SongUNet


def xavier(gain: float = 1.0):
    """EDM's xavier_uniform times init_weight; fans of a (k, k, in, out) or (in, out) kernel."""
    def init(key, shape, dtype=jnp.float32):
        receptive = math.prod(shape[:-2])
        bound = gain * math.sqrt(6 / (receptive * (shape[-2] + shape[-1])))
        return bound * jax.random.uniform(key, shape, dtype, -1.0, 1.0)
    return init


def _shifted(x, axis: int, start: int, length: int, step: int = 1):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, start + length, step)
    return x[tuple(index)]


def _pad(x, axis: int, lo: int, hi: int):
    widths = [(0, 0)] * x.ndim
    widths[axis] = (lo, hi)
    return jnp.pad(x, widths)


def fir_down(x, taps, pad: int):
    """EDM's FIR downsampling (conv2d with outer(f, f), stride 2, padding `pad`), separably on H, W."""
    for axis in (1, 2):
        x = _pad(x, axis, pad, pad)
        n_out = (x.shape[axis] - len(taps)) // 2 + 1
        x = sum(w * _shifted(x, axis, k, 2 * n_out - 1, 2) for k, w in enumerate(taps))
    return x


def fir_up(x, taps, pad: int):
    """EDM's FIR upsampling (conv_transpose2d with 4 outer(f, f), stride 2, padding `pad`): zeros
    stuffed between pixels, then the filter (2 f per axis), separably on H, W."""
    length = len(taps)
    for axis in (1, 2):
        n = 2 * x.shape[axis]
        stacked = jnp.stack([x, jnp.zeros_like(x)], axis=axis + 1)
        x = stacked.reshape(*x.shape[:axis], n, *x.shape[axis + 1:])
        x = _pad(x, axis, length - 1 - pad, pad)
        x = sum(2 * w * _shifted(x, axis, length - 1 - k, n) for k, w in enumerate(taps))
    return x


class Conv2d(nn.Conv):
    """EDM Conv2d: optional FIR up/downsampling, then the conv (`fused`: conv first, padded by the
    filter's reach, then the FIR downsampling). Built by `conv2d`, which sets the padding."""

    taps: tuple = ()
    up: bool = False
    down: bool = False
    fused: bool = False

    @nn.compact
    def __call__(self, x):
        pad = (len(self.taps) - 1) // 2
        if self.fused and self.down:
            return fir_down(super().__call__(x), self.taps, 0)
        if self.up:
            x = fir_up(x, self.taps, pad)
        elif self.down:
            x = fir_down(x, self.taps, pad)
        return super().__call__(x)


def conv2d(cout: int, kernel: int, taps=(), up=False, down=False, fused=False, gain=1.0, name=None) -> Conv2d:
    p = kernel // 2 + ((len(taps) - 1) // 2 if fused and down else 0)
    return Conv2d(cout, (kernel, kernel), padding=((p, p), (p, p)), kernel_init=xavier(gain), taps=tuple(taps),
                  up=up, down=down, fused=fused, name=name)


def linear(cout: int, name: str) -> nn.Dense:
    return nn.Dense(cout, kernel_init=xavier(), name=name)


def group_norm(channels: int, name: str) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=norm_groups(channels), epsilon=EPS, use_fast_variance=False, name=name)


class UNetBlock(nn.Module):
    """EDM UNetBlock as SongUNet configures it: GN-SiLU-conv, + affine(emb) (no scale-shift),
    GN-SiLU-dropout-conv, + skip, x sqrt(1/2); then optional one-head self-attention."""

    cfg: SongUNetConfig
    node: layout.Node

    @nn.compact
    def __call__(self, x, emb, train: bool = False):
        cfg, node, taps = self.cfg, self.node, layout.fir_taps(self.cfg)
        orig = x
        x = conv2d(node.cout, 3, taps, node.up, node.down, name="conv0")(nn.silu(group_norm(node.cin, "norm0")(x)))
        x = nn.silu(group_norm(node.cout, "norm1")(x + linear(node.cout, "affine")(emb)[:, None, None, :]))
        x = nn.Dropout(cfg.dropout, deterministic=not train)(x)
        x = conv2d(node.cout, 3, gain=1e-5, name="conv1")(x)
        if node.cin != node.cout or node.resample:
            orig = conv2d(node.cout, 1, taps, node.up, node.down, name="skip")(orig)
        x = (x + orig) * SKIP_SCALE
        if node.attention:
            b, h, w, c = x.shape
            qkv = conv2d(3 * c, 1, gain=math.sqrt(0.2), name="qkv")(group_norm(c, "norm2")(x))
            qkv = qkv.reshape(b, h * w, 1, c, 3)  # EDM's qkv channels are (channel, q|k|v) interleaved
            a = jax.nn.dot_product_attention(qkv[..., 0], qkv[..., 1], qkv[..., 2])  # (B, HW, 1, C)
            x = (conv2d(c, 1, gain=1e-5, name="proj")(a.reshape(b, h, w, c)) + x) * SKIP_SCALE
        return x


class Encoder(nn.Module):
    """EDM's `enc`: returns the features and the skip stack (residual encoder: the downsampled
    input is added back at every level, `aux`)."""

    cfg: SongUNetConfig

    @nn.compact
    def __call__(self, x, emb, train: bool = False):
        skips, aux, taps = [], x, layout.fir_taps(self.cfg)
        for node in layout.encoder(self.cfg):
            if node.kind == "aux_residual":
                x = skips[-1] = aux = (x + conv2d(node.cout, 3, taps, down=True, fused=True, name=node.name)(aux)) \
                    * SKIP_SCALE
                continue
            if node.kind == "conv":
                x = conv2d(node.cout, 3, name=node.name)(x)
            else:
                x = UNetBlock(self.cfg, node, name=node.name)(x, emb, train)
            skips.append(x)
        return x, skips


class Decoder(nn.Module):
    """EDM's `dec` with the `standard` decoder (ml-agm's choice): GN-SiLU-conv on the last level."""

    cfg: SongUNetConfig

    @nn.compact
    def __call__(self, x, emb, skips, train: bool = False):
        skips = list(skips)
        for node in layout.decoder(self.cfg):
            if node.kind == "aux_norm":
                x = nn.silu(group_norm(node.cin, node.name)(x))
            elif node.kind == "aux_conv":
                x = conv2d(node.cout, 3, gain=1e-5, name=node.name)(x)
            else:
                if node.concat:
                    x = jnp.concatenate([x, skips.pop()], axis=-1)
                x = UNetBlock(self.cfg, node, name=node.name)(x, emb, train)
        return x


class SongUNet(nn.Module):
    config: SongUNetConfig

    def noise_embedding(self, t):
        """[sin, cos] of the noise label (EDM computes [cos, sin], then swaps the halves)."""
        cfg, t = self.config, t.astype(jnp.float32) * self.config.time_scaling
        half = cfg.noise_channels // 2
        if cfg.embedding_type == "fourier":
            freqs = 2 * math.pi * jnp.asarray(layout.fourier_frequencies(half), jnp.float32)
        else:  # EDM PositionalEmbedding(endpoint=True)
            freqs = (1 / 10000) ** (jnp.arange(half, dtype=jnp.float32) / (half - 1))
        args = t[:, None] * freqs[None]
        return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=1)

    @nn.compact
    def __call__(self, x, t, y=None, train: bool = False):
        cfg = self.config
        emb = self.noise_embedding(t)
        if not cfg.num_classes:
            if y is not None:
                raise ValueError("y given to an unconditional model (num_classes=0)")
        else:  # one-hot x sqrt(classes) (EDM); the null label num_classes is the all-zero vector
            y = jnp.full(t.shape, cfg.num_classes, jnp.int32) if y is None else y.astype(jnp.int32)
            onehot = (y[:, None] == jnp.arange(cfg.num_classes)[None]).astype(emb.dtype)
            emb = emb + linear(cfg.noise_channels, "map_label")(onehot * math.sqrt(cfg.num_classes))
        emb = nn.silu(linear(cfg.emb_channels, "map_layer1")(nn.silu(linear(cfg.emb_channels, "map_layer0")(emb))))
        x, skips = Encoder(cfg, name="enc")(x, emb, train)
        return Decoder(cfg, name="dec")(x, emb, skips, train)
