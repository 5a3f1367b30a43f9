"""Analytic multiply-accumulates of one U-Net forward pass, standard library only.

Conventions match torch's counters: a conv costs out_elements x C_in x k x k (every tap, padded
ones included), a linear rows x in x out, attention QK^T and AV each L x S x d per head; biases,
norms, activations, softmax, resampling and the embedding lookup are free. Video frames are
folded into the batch (N = B x T); the embedding MLPs run once per example (B rows).
"""

from __future__ import annotations

from collections import Counter

from architectures.unet import layout
from architectures.unet.config import UNetConfig


def _conv(n: int, size: int, cin: int, cout: int, k: int = 3) -> int:
    return n * size * size * cin * cout * k * k


def _resblock(cfg: UNetConfig, n: int, b: int, cin: int, cout: int, size: int, resample: str = "none") -> Counter:
    s = {"up": 2 * size, "down": size // 2}.get(resample, size)  # convs run after the resampling
    conv = _conv(n, s, cin, cout) + _conv(n, s, cout, cout) + (_conv(n, s, cin, cout, 1) if cin != cout else 0)
    linear = b * cfg.emb_channels * (2 * cout if cfg.use_scale_shift_norm else cout)
    return Counter(conv=conv, linear=linear)


def _attention(cfg: UNetConfig, n: int, b: int, ch: int, size: int) -> Counter:
    tokens = n * size * size
    out = Counter(linear=4 * tokens * ch * ch, attention=2 * tokens * size * size * ch)  # qkv + proj; QK^T + AV
    if cfg.frames:  # temporal attention per pixel over the T frames
        out += Counter(linear=4 * tokens * ch * ch, attention=2 * tokens * cfg.frames * ch)
    return out


def _stage(cfg: UNetConfig, n: int, b: int, spec: layout.Stage) -> Counter:
    out = Counter()
    if spec.res:
        out += _resblock(cfg, n, b, spec.cin, spec.cout, spec.size)
    if spec.attn:
        out += _attention(cfg, n, b, spec.cout, spec.size)
    if spec.resample != "none" and cfg.resblock_updown:
        out += _resblock(cfg, n, b, spec.cout, spec.cout, spec.size, spec.resample)
    elif spec.resample != "none":
        s = 2 * spec.size if spec.resample == "up" else spec.size // 2
        out += Counter(conv=_conv(n, s, spec.cout, spec.cout))
    return out


def forward_macs(config: UNetConfig, batch: int) -> dict[str, int]:
    cfg, b = config, batch
    n = b * max(cfg.frames, 1)
    c, e = cfg.model_channels, cfg.emb_channels
    total = Counter(linear=b * (c * e + e * e), conv=_conv(n, cfg.image_size, cfg.net_in_channels, cfg.level_channels[0]))
    for spec in layout.encoder(cfg) + layout.decoder(cfg):
        total += _stage(cfg, n, b, spec)
    ch, size = layout.bottom(cfg)
    total += _resblock(cfg, n, b, ch, ch, size) + _attention(cfg, n, b, ch, size) + _resblock(cfg, n, b, ch, ch, size)
    total += Counter(conv=_conv(n, cfg.image_size, cfg.level_channels[0], cfg.out_channels))
    return {key: int(total[key]) for key in ("conv", "linear", "attention")}
