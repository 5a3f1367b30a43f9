"""SongUNet (DDPM++ / NCSN++, Song et al. 2021) as EDM's training/networks.py builds it, PyTorch.

Channels-first: x (B, C, H, W). Parameter names are EDM's (`enc.16x16_block0.conv0.weight`), so
an EDM or ml-agm state dict loads as is (its `resample_filter` and `map_noise.freqs` buffers
aside: here the FIR filter is applied as separable shifted sums and the Fourier frequencies are a
fixed draw, layout.fourier_units, held as the integer `freq_units` buffer). Class and submodule
names match songunet_flax.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from architectures.songunet import layout
from architectures.songunet.config import SongUNetConfig, norm_groups

SKIP_SCALE = math.sqrt(0.5)  # EDM SongUNet: every residual sum is scaled by sqrt(1/2)
EPS = 1e-6  # GroupNorm epsilon in SongUNet


def weight_init(shape, fan_in: int, fan_out: int, gain: float = 1.0) -> torch.Tensor:
    """EDM's xavier_uniform (init_weight = gain): SongUNet's `init`, `init_zero` (1e-5), `init_attn` (sqrt 0.2)."""
    return gain * math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)


def _shifted(x, axis: int, start: int, length: int, step: int = 1):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, start + length, step)
    return x[tuple(index)]


def fir_down(x, taps, pad: int):
    """EDM's FIR downsampling (conv2d with outer(f, f), stride 2, padding `pad`), separably on H, W."""
    for axis in (2, 3):
        x = F.pad(x, (pad, pad) if axis == 3 else (0, 0, pad, pad))
        n_out = (x.shape[axis] - len(taps)) // 2 + 1
        x = sum(w * _shifted(x, axis, k, 2 * n_out - 1, 2) for k, w in enumerate(taps))
    return x


def fir_up(x, taps, pad: int):
    """EDM's FIR upsampling (conv_transpose2d with 4 outer(f, f), stride 2, padding `pad`): zeros
    stuffed between pixels, then the filter (2 f per axis), separably on H, W."""
    length = len(taps)
    for axis in (2, 3):
        n = 2 * x.shape[axis]
        x = torch.stack([x, torch.zeros_like(x)], dim=axis + 1).flatten(axis, axis + 1)
        lo, hi = length - 1 - pad, pad
        x = F.pad(x, (lo, hi) if axis == 3 else (0, 0, lo, hi))
        x = sum(2 * w * _shifted(x, axis, length - 1 - k, n) for k, w in enumerate(taps))
    return x


class Conv2d(nn.Module):
    """EDM Conv2d: optional FIR up/downsampling, then a k x k conv (`fused`: conv first, padded by
    the filter's reach, then the FIR downsampling, as EDM's fused_resample)."""

    def __init__(self, cin: int, cout: int, kernel: int, taps=(), up=False, down=False, fused=False, gain=1.0):
        super().__init__()
        self.kernel, self.taps, self.up, self.down, self.fused = kernel, tuple(taps), up, down, fused
        self.weight = nn.Parameter(weight_init((cout, cin, kernel, kernel), cin * kernel ** 2, cout * kernel ** 2, gain))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        pad = (len(self.taps) - 1) // 2
        if self.fused and self.down:
            return fir_down(F.conv2d(x, self.weight, self.bias, padding=self.kernel // 2 + pad), self.taps, 0)
        if self.up:
            x = fir_up(x, self.taps, pad)
        elif self.down:
            x = fir_down(x, self.taps, pad)
        return F.conv2d(x, self.weight, self.bias, padding=self.kernel // 2)


def linear(cin: int, cout: int) -> nn.Linear:
    layer = nn.Linear(cin, cout)
    with torch.no_grad():
        layer.weight.copy_(weight_init((cout, cin), cin, cout))
        layer.bias.zero_()
    return layer


class UNetBlock(nn.Module):
    """EDM UNetBlock as SongUNet configures it: GN-SiLU-conv, + affine(emb) (no scale-shift),
    GN-SiLU-dropout-conv, + skip, x sqrt(1/2); then optional one-head self-attention."""

    def __init__(self, cfg: SongUNetConfig, node: layout.Node):
        super().__init__()
        cin, cout, taps = node.cin, node.cout, layout.fir_taps(cfg)
        self.dropout = cfg.dropout
        self.norm0 = nn.GroupNorm(norm_groups(cin), cin, eps=EPS)
        self.conv0 = Conv2d(cin, cout, 3, taps, up=node.up, down=node.down)
        self.affine = linear(cfg.emb_channels, cout)
        self.norm1 = nn.GroupNorm(norm_groups(cout), cout, eps=EPS)
        self.conv1 = Conv2d(cout, cout, 3, gain=1e-5)
        self.skip = Conv2d(cin, cout, 1, taps, up=node.up, down=node.down) if cin != cout or node.resample else None
        self.attention = node.attention
        if node.attention:
            self.norm2 = nn.GroupNorm(norm_groups(cout), cout, eps=EPS)
            self.qkv = Conv2d(cout, 3 * cout, 1, gain=math.sqrt(0.2))
            self.proj = Conv2d(cout, cout, 1, gain=1e-5)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        x = F.silu(self.norm1(x + self.affine(emb)[:, :, None, None]))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        x = (x + (orig if self.skip is None else self.skip(orig))) * SKIP_SCALE
        if self.attention:
            b, c, h, w = x.shape
            # EDM's qkv channels are (channel, q|k|v) interleaved: reshape(B, C, 3, HW)
            q, k, v = self.qkv(self.norm2(x)).reshape(b, 1, c, 3, h * w).permute(3, 0, 1, 4, 2)
            a = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
            x = (self.proj(a.transpose(-1, -2).reshape(b, c, h, w)) + x) * SKIP_SCALE
        return x


class Encoder(nn.ModuleDict):
    """EDM's `enc`: returns the features and the skip stack (residual encoder: the downsampled
    input is added back at every level, `aux`)."""

    def __init__(self, cfg: SongUNetConfig):
        taps = layout.fir_taps(cfg)
        modules = {}
        for node in layout.encoder(cfg):
            if node.kind == "conv":
                modules[node.name] = Conv2d(node.cin, node.cout, 3)
            elif node.kind == "aux_residual":
                modules[node.name] = Conv2d(node.cin, node.cout, 3, taps, down=True, fused=True)
            else:
                modules[node.name] = UNetBlock(cfg, node)
        super().__init__(modules)

    def forward(self, x, emb):
        skips, aux = [], x
        for name, module in self.items():
            if name.endswith("aux_residual"):
                x = skips[-1] = aux = (x + module(aux)) * SKIP_SCALE
            else:
                x = module(x, emb) if isinstance(module, UNetBlock) else module(x)
                skips.append(x)
        return x, skips


class Decoder(nn.ModuleDict):
    """EDM's `dec` with the `standard` decoder (ml-agm's choice): GN-SiLU-conv on the last level."""

    def __init__(self, cfg: SongUNetConfig):
        modules = {}
        for node in layout.decoder(cfg):
            if node.kind == "aux_norm":
                modules[node.name] = nn.GroupNorm(norm_groups(node.cin), node.cin, eps=EPS)
            elif node.kind == "aux_conv":
                modules[node.name] = Conv2d(node.cin, node.cout, 3, gain=1e-5)
            else:
                modules[node.name] = UNetBlock(cfg, node)
        super().__init__(modules)
        self.concat = {node.name for node in layout.decoder(cfg) if node.concat}

    def forward(self, x, emb, skips):
        for name, module in self.items():
            if name.endswith("aux_norm"):
                x = F.silu(module(x))
            elif name.endswith("aux_conv"):
                x = module(x)
            else:
                if name in self.concat:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = module(x, emb)
        return x


class SongUNet(nn.Module):
    def __init__(self, config: SongUNetConfig):
        super().__init__()
        cfg = self.config = config
        # the Fourier frequencies as integers (layout.FOURIER_UNIT): exact when the weights are cast
        # (2 pi f t with f ~ 16 N(0, 1) in bfloat16 would be off by radians)
        units = torch.tensor(layout.fourier_units(cfg.noise_channels // 2), dtype=torch.int32)
        self.register_buffer("freq_units", units, persistent=False)
        self.map_label = linear(cfg.num_classes, cfg.noise_channels) if cfg.num_classes else None
        self.map_layer0 = linear(cfg.noise_channels, cfg.emb_channels)
        self.map_layer1 = linear(cfg.emb_channels, cfg.emb_channels)
        self.enc = Encoder(cfg)
        self.dec = Decoder(cfg)

    def frequencies(self) -> torch.Tensor:
        """EDM FourierEmbedding's `freqs` (float32)."""
        return self.freq_units.float() * layout.FOURIER_UNIT

    def noise_embedding(self, t):
        """[sin, cos] of the noise label (EDM computes [cos, sin], then swaps the halves)."""
        cfg, t = self.config, t.float() * self.config.time_scaling
        if cfg.embedding_type == "fourier":
            freqs = 2 * math.pi * self.frequencies()
        else:  # EDM PositionalEmbedding(endpoint=True)
            half = cfg.noise_channels // 2
            freqs = (1 / 10000) ** (torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
        args = t[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=1)

    def forward(self, x, t, y=None):
        cfg = self.config
        emb = self.noise_embedding(t)
        if self.map_label is None:
            if y is not None:
                raise ValueError("y given to an unconditional model (num_classes=0)")
        else:  # one-hot x sqrt(classes) (EDM); the null label num_classes is the all-zero vector
            y = torch.full_like(t, cfg.num_classes, dtype=torch.long) if y is None else y.long()
            onehot = (y[:, None] == torch.arange(cfg.num_classes, device=y.device)[None]).to(emb.dtype)
            emb = emb + self.map_label(onehot * math.sqrt(cfg.num_classes))
        emb = F.silu(self.map_layer1(F.silu(self.map_layer0(emb))))
        x, skips = self.enc(x, emb)
        return self.dec(x, emb, skips)
