"""The ADM U-Net's stage plan (guided-diffusion UNetModel.__init__), standard library only.

Both backends build their modules from this plan and flops.py counts it, so the three agree on
channels, attention placement and resampling by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from architectures.unet.config import UNetConfig


@dataclass(frozen=True)
class Stage:
    cin: int  # channels entering the stage (decoder: incl. the concatenated skip)
    cout: int  # channels leaving it
    size: int  # spatial size entering the stage
    res: bool  # a ResBlock cin -> cout
    attn: bool  # an attention block after the ResBlock
    resample: str  # "none", "down" (after the stage), "up" (after the stage)


def encoder(cfg: UNetConfig) -> list[Stage]:
    """Per level: num_res_blocks x [ResBlock (+ attention)], then a downsample but at the last level."""
    stages, ch, size, ds = [], cfg.level_channels[0], cfg.image_size, 1
    for level, cout in enumerate(cfg.level_channels):
        for _ in range(cfg.num_res_blocks):
            stages.append(Stage(ch, cout, size, True, ds in cfg.attention_ds, "none"))
            ch = cout
        if level != len(cfg.level_channels) - 1:
            stages.append(Stage(ch, ch, size, False, False, "down"))
            size, ds = size // 2, ds * 2
    return stages


def skip_channels(cfg: UNetConfig) -> list[int]:
    """Channels pushed on the skip stack: the input conv's output, then every encoder stage's."""
    return [cfg.level_channels[0]] + [s.cout for s in encoder(cfg)]


def bottom(cfg: UNetConfig) -> tuple[int, int]:
    """(channels, size) of the middle block."""
    return cfg.level_channels[-1], cfg.image_size // 2 ** (len(cfg.level_channels) - 1)


def decoder(cfg: UNetConfig) -> list[Stage]:
    """Levels reversed: (num_res_blocks + 1) x [concat skip -> ResBlock (+ attention)], upsample after
    the last block of every level but level 0."""
    skips = skip_channels(cfg)
    (ch, size), ds, stages = bottom(cfg), 2 ** (len(cfg.level_channels) - 1), []
    for level in reversed(range(len(cfg.level_channels))):
        cout = cfg.level_channels[level]
        for i in range(cfg.num_res_blocks + 1):
            up = level > 0 and i == cfg.num_res_blocks
            stages.append(Stage(ch + skips.pop(), cout, size, True, ds in cfg.attention_ds, "up" if up else "none"))
            ch = cout
        if level > 0:
            size, ds = size * 2, ds // 2
    return stages
