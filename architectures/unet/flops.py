"""Analytic multiply-accumulates of one U-Net forward pass, standard library only.

Conventions match torch's counters: a conv costs out_elements x C_in x k x k (every tap, padded
ones included; `padded_taps=False` counts only taps that land on the image, as XLA's
HloCostAnalysis does), a linear rows x in x out, attention QK^T and AV each L x S x d per head; biases,
norms, activations, softmax, resampling and the embedding lookup are free. Video frames are
folded into the batch (N = B x T); the embedding MLPs run once per example (B rows).
"""

from __future__ import annotations

from collections import Counter

from architectures.unet import layout
from architectures.unet.config import UNetConfig


def _taps(size_in: int, k: int, stride: int, padded: bool) -> int:
    """Kernel taps summed over the output positions of one spatial axis (padding (k - 1) // 2)."""
    size_out, pad = size_in // stride, (k - 1) // 2
    if padded:
        return size_out * k
    return sum(min(o * stride - pad + k, size_in) - max(o * stride - pad, 0) for o in range(size_out))


def _conv(n: int, size_in: int, cin: int, cout: int, k: int = 3, stride: int = 1, padded: bool = True) -> int:
    return n * _taps(size_in, k, stride, padded) ** 2 * cin * cout


def _resblock(cfg: UNetConfig, n: int, b: int, cin: int, cout: int, size: int, resample: str = "none",
              padded: bool = True) -> Counter:
    s = {"up": 2 * size, "down": size // 2}.get(resample, size)  # convs run after the resampling
    conv = _conv(n, s, cin, cout, padded=padded) + _conv(n, s, cout, cout, padded=padded)
    conv += _conv(n, s, cin, cout, k=1) if cin != cout else 0
    linear = b * cfg.emb_channels * (2 * cout if cfg.use_scale_shift_norm else cout)
    return Counter(conv=conv, linear=linear)


def _attention(cfg: UNetConfig, n: int, b: int, ch: int, size: int) -> Counter:
    tokens = n * size * size
    out = Counter(linear=4 * tokens * ch * ch, attention=2 * tokens * size * size * ch)  # qkv + proj; QK^T + AV
    if cfg.frames:  # temporal attention per pixel over the T frames
        out += Counter(linear=4 * tokens * ch * ch, attention=2 * tokens * cfg.frames * ch)
    return out


def _stage(cfg: UNetConfig, n: int, b: int, spec: layout.Stage, padded: bool) -> Counter:
    out = Counter()
    if spec.res:
        out += _resblock(cfg, n, b, spec.cin, spec.cout, spec.size, padded=padded)
    if spec.attn:
        out += _attention(cfg, n, b, spec.cout, spec.size)
    if spec.resample != "none" and cfg.resblock_updown:
        out += _resblock(cfg, n, b, spec.cout, spec.cout, spec.size, spec.resample, padded)
    elif spec.resample == "up":  # nearest x2, then a 3x3 conv
        out += Counter(conv=_conv(n, 2 * spec.size, spec.cout, spec.cout, padded=padded))
    elif spec.resample == "down":  # stride-2 3x3 conv
        out += Counter(conv=_conv(n, spec.size, spec.cout, spec.cout, stride=2, padded=padded))
    return out


def forward_macs(config: UNetConfig, batch: int, padded_taps: bool = True) -> dict[str, int]:
    cfg, b, p = config, batch, padded_taps
    n = b * max(cfg.frames, 1)
    c, e, size = cfg.model_channels, cfg.emb_channels, cfg.image_size
    total = Counter(linear=b * (c * e + e * e), conv=_conv(n, size, cfg.net_in_channels, cfg.level_channels[0], padded=p))
    for spec in layout.encoder(cfg) + layout.decoder(cfg):
        total += _stage(cfg, n, b, spec, p)
    ch, bottom = layout.bottom(cfg)
    total += _resblock(cfg, n, b, ch, ch, bottom, padded=p) + _attention(cfg, n, b, ch, bottom)
    total += _resblock(cfg, n, b, ch, ch, bottom, padded=p)
    total += Counter(conv=_conv(n, size, cfg.level_channels[0], cfg.out_channels, padded=p))
    return {key: int(total[key]) for key in ("conv", "linear", "attention")}
