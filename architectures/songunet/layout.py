"""The SongUNet's module plan (EDM training/networks.py SongUNet.__init__), standard library only.

Both backends build their modules from this plan, under EDM's names (`enc.32x32_block0`,
`dec.8x8_in0`, ...), and flops.py counts it, so the three agree by construction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from architectures.songunet.config import SongUNetConfig

FOURIER_SCALE = 16.0  # EDM FourierEmbedding(scale=16)
FOURIER_SEED = 0  # the frequencies are a fixed draw, identical in both backends (EDM: torch.randn at init)
FOURIER_UNIT = 2.0 ** -16  # they are multiples of this (|f| < 2^8 then needs 24 bits: float32-exact)


@dataclass(frozen=True)
class Node:
    name: str  # EDM's key, e.g. "16x16_block2"
    kind: str  # "conv" (input conv), "block" (UNetBlock), "aux_residual", "aux_norm", "aux_conv"
    cin: int
    cout: int
    res: int  # the level's resolution (the node's output size)
    up: bool = False  # FIR upsampling before the convs (input res / 2)
    down: bool = False  # FIR downsampling before the convs (input 2 res)
    attention: bool = False  # a self-attention layer after the residual branch
    concat: bool = False  # decoder: the last encoder skip is concatenated first

    @property
    def resample(self) -> bool:
        return self.up or self.down


def encoder(cfg: SongUNetConfig) -> list[Node]:
    nodes, cout, caux = [], cfg.in_channels, cfg.in_channels
    for level, mult in enumerate(cfg.channel_mult):
        res = cfg.image_size >> level
        if level == 0:
            cin, cout = cout, cfg.model_channels
            nodes.append(Node(f"{res}x{res}_conv", "conv", cin, cout, res))
        else:
            nodes.append(Node(f"{res}x{res}_down", "block", cout, cout, res, down=True))
            if cfg.encoder_type == "residual":  # progressive input (NCSN++): a fused conv + FIR downsampling
                nodes.append(Node(f"{res}x{res}_aux_residual", "aux_residual", caux, cout, res, down=True))
                caux = cout
        for idx in range(cfg.num_blocks):
            cin, cout = cout, cfg.model_channels * mult
            nodes.append(Node(f"{res}x{res}_block{idx}", "block", cin, cout, res, attention=res in cfg.attn_resolutions))
    return nodes


def skip_channels(cfg: SongUNetConfig) -> list[int]:
    """Channels pushed on the skip stack: every encoder node but the aux ones."""
    return [n.cout for n in encoder(cfg) if not n.kind.startswith("aux")]


def decoder(cfg: SongUNetConfig) -> list[Node]:
    skips, nodes = skip_channels(cfg), []
    cout = skips[-1]
    last = len(cfg.channel_mult) - 1
    for level, mult in reversed(list(enumerate(cfg.channel_mult))):
        res = cfg.image_size >> level
        if level == last:
            nodes.append(Node(f"{res}x{res}_in0", "block", cout, cout, res, attention=True))
            nodes.append(Node(f"{res}x{res}_in1", "block", cout, cout, res))
        else:
            nodes.append(Node(f"{res}x{res}_up", "block", cout, cout, res, up=True))
        for idx in range(cfg.num_blocks + 1):
            cin, cout = cout + skips.pop(), cfg.model_channels * mult
            attn = idx == cfg.num_blocks and res in cfg.attn_resolutions
            nodes.append(Node(f"{res}x{res}_block{idx}", "block", cin, cout, res, attention=attn, concat=True))
        if level == 0:  # decoder_type "standard": GN - SiLU - conv on the last level only
            nodes.append(Node(f"{res}x{res}_aux_norm", "aux_norm", cout, cout, res))
            nodes.append(Node(f"{res}x{res}_aux_conv", "aux_conv", cout, cfg.out_channels, res))
    return nodes


def fourier_units(count: int) -> list[int]:
    """EDM FourierEmbedding's frequencies, N(0, 16^2), in units of FOURIER_UNIT: a seeded draw
    instead of EDM's init-time torch.randn, so both backends and every build hold the same ones
    (a buffer in EDM, not a parameter: not trained, not counted). Integers below 2^24 in these
    units are exact in float32 and survive a cast of the torch model's weights to bfloat16."""
    rng = random.Random(FOURIER_SEED)
    units = [round(rng.gauss(0.0, 1.0) * FOURIER_SCALE / FOURIER_UNIT) for _ in range(count)]
    if max(map(abs, units)) >= 2 ** 24:
        raise ValueError("a Fourier frequency beyond float32's exact range")
    return units


def fourier_frequencies(count: int) -> list[float]:
    return [u * FOURIER_UNIT for u in fourier_units(count)]


def fir_taps(cfg: SongUNetConfig) -> tuple[float, ...]:
    """The 1-D resampling filter, normalized to sum 1 (EDM: outer(f, f) / sum(f)^2, separable)."""
    total = float(sum(cfg.resample_filter))
    return tuple(v / total for v in cfg.resample_filter)
