"""NestedUNet (Matryoshka Diffusion Models, Gu et al. 2024, arXiv 2310.15111) config and presets.
Standard library only.

A nest is a tuple of U-Nets (`levels`), the highest resolution first. Level i + 1 replaces the
middle block of level i: level i's deepest features go through a zero-initialized 3x3 conv
(`in_adapter`) into level i + 1's input, and level i + 1's top feature map comes back through
another one (`out_adapter`). The model takes one noisy image per level and returns one
prediction per level, in the same order (ml-mdm models/nested_unet.py).

Conditioning lives in the innermost level and is shared by all: either a sequence of embedding
tokens (text-encoder outputs; the harness draws them, no text encoder is run) with a mask, or a
class label. Its pooled embedding is added to every level's time embedding; the (projected)
tokens are the keys/values of every cross-attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from architectures.processes.config import with_null_label
from architectures.processes.multires_config import MultiResConfig
from architectures.registry import Preset


@dataclass(frozen=True)
class LevelConfig:
    """One U-Net of the nest (ml-mdm UNetConfig)."""

    resolution: int  # image side this U-Net sees; also its resolution micro-conditioning value
    channels: tuple[int, ...]  # resolution_channels: width per level of this U-Net
    num_resnets: tuple[int, ...]  # num_resnets_per_resolution (the up path has one more)
    attention_layers: tuple[int, ...] = ()  # attention blocks after each ResNet, per level; () = none
    attention_ffn: bool = False  # resnet_config.use_attention_ffn: GN -> 1x1 4x -> GELU -> 1x1 after attention
    mid_blocks: bool = False  # ResNet + attention, ResNet at the bottom (innermost level only)
    temporal_dim: int = 0  # time-embedding width; 0 = 4 * channels[0]
    normalize_input: bool = False  # divide x_t by its per-example std first (ml-mdm: not skip_normalization)

    def __post_init__(self):
        n = len(self.channels)
        if n < 1 or any(c < 1 for c in self.channels) or self.resolution < 1:
            raise ValueError(f"level channels={self.channels!r}, resolution={self.resolution!r}; allowed: >= 1")
        if len(self.num_resnets) != n or any(r < 1 for r in self.num_resnets):
            raise ValueError(f"num_resnets={self.num_resnets!r}: one value >= 1 per entry of channels {self.channels}")
        if self.attention_layers and (len(self.attention_layers) != n or min(self.attention_layers) < 0):
            raise ValueError(f"attention_layers={self.attention_layers!r}: () or one value >= 0 per level")
        if self.resolution % 2 ** (n - 1):
            raise ValueError(f"resolution={self.resolution} must be divisible by 2**(len(channels)-1)")

    @property
    def emb_dim(self) -> int:
        return self.temporal_dim or 4 * self.channels[0]

    def attn(self, i: int) -> int:
        return self.attention_layers[i] if self.attention_layers else 0

    @property
    def bottom(self) -> int:
        """Spatial side at the deepest level (where the inner U-Net attaches)."""
        return self.resolution // 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class NestedUNetConfig:
    levels: tuple[LevelConfig, ...]  # highest resolution first; the last one is the innermost U-Net
    in_channels: int = 3
    cond_dim: int = 0  # width D_c of the conditioning tokens (flan-T5-XL: 2048); 0 = no tokens
    cond_proj_dim: int = 0  # Linear(D_c -> this) before pooling and cross-attention; 0 = no projection
    cond_tokens: int = 16  # tokens drawn for FLOPs and timing (the spec's count; T5 allows up to 128)
    masked_cross_attention: bool = False  # ml-mdm configs: 0 (the mask is used only for pooling)
    num_classes: int = 0  # > 0: class labels instead of tokens; label num_classes is the null label
    num_heads: int = 8
    norm_groups: int = 32  # every GroupNorm (ml-mdm hard-codes 32 in attention; tiny presets need fewer)
    dropout: float = 0.0
    time_scaling: float = 1000.0  # the process's t in [0, 1) -> integer timestep 0..999
    process: MultiResConfig = field(default_factory=MultiResConfig)

    def __post_init__(self):
        if not self.levels:
            raise ValueError("levels: at least one U-Net")
        if self.in_channels < 1 or self.num_heads < 1 or self.norm_groups < 1 or self.cond_tokens < 1:
            raise ValueError("in_channels, num_heads, norm_groups, cond_tokens; allowed: >= 1")
        if min(self.cond_dim, self.cond_proj_dim, self.num_classes) < 0:
            raise ValueError("cond_dim, cond_proj_dim, num_classes; allowed: >= 0")
        if self.cond_dim and self.num_classes:
            raise ValueError("conditioning by tokens (cond_dim > 0) or by class (num_classes > 0), not both")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r}; allowed: [0, 1)")
        self._check_nest()
        process = with_null_label(self.process, self.num_classes, tokens=self.cond_dim > 0)  # cond_drop_prob drops to it
        if process.resolutions != self.resolutions:
            process = replace(process, resolutions=self.resolutions)
        object.__setattr__(self, "process", process)

    def _check_nest(self):
        emb = self.levels[-1].emb_dim
        for i, level in enumerate(self.levels):
            if level.emb_dim != emb:
                raise ValueError(f"levels[{i}]: time-embedding width {level.emb_dim} != the innermost's {emb} "
                                 "(the shared conditioning embedding is added to every level's)")
            if level.mid_blocks and i < len(self.levels) - 1:
                raise ValueError(f"levels[{i}].mid_blocks: only the innermost U-Net has mid blocks")
            for ch in level.channels:
                if ch % self.norm_groups or ch % self.num_heads:
                    raise ValueError(f"levels[{i}] channels {level.channels}: each must divide by "
                                     f"norm_groups={self.norm_groups} and num_heads={self.num_heads}")
            if i + 1 < len(self.levels) and level.bottom != self.levels[i + 1].resolution:
                raise ValueError(f"levels[{i}] bottom side {level.bottom} != levels[{i + 1}].resolution "
                                 f"{self.levels[i + 1].resolution}")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(level.resolution for level in self.levels)

    @property
    def token_dim(self) -> int:
        """Width of the tokens the cross-attentions see."""
        return self.cond_proj_dim or self.cond_dim

    @property
    def image_size(self) -> int:
        return self.levels[0].resolution

    @property
    def modality(self) -> str:
        return "image"

    def input_shapes(self, batch: int) -> dict:
        """x is a list: one noisy image per resolution, highest first (channels-last)."""
        xs = [((batch, r, r, self.in_channels), "float32") for r in self.resolutions]
        shapes = {"x": xs, "t": ((batch,), "float32")}
        if self.num_classes > 0:
            shapes["y"] = ((batch,), "int32")
        if self.cond_dim:
            shapes["context"] = ((batch, self.cond_tokens, self.cond_dim), "float32")
            shapes["context_mask"] = ((batch, self.cond_tokens), "float32")
        return shapes


# -- presets ---------------------------------------------------------------------------------
_OFFICIAL = "official config (apple/ml-mdm configs/models/{}.yaml)"
# The 64x64 model (cc12m_64x64.yaml): attention at levels 1, 2 with [0, 1, 5] layers + FFN, mid blocks.
MDM64 = LevelConfig(resolution=64, channels=(256, 512, 768), num_resnets=(2, 2, 2), attention_layers=(0, 1, 5),
                    attention_ffn=True, mid_blocks=True)
# The 256 wrapper (cc12m_256x256.yaml): no attention, no mid blocks, temporal_dim 1024.
MDM256 = LevelConfig(resolution=256, channels=(64, 128, 256), num_resnets=(2, 2, 1), temporal_dim=1024)
# The 1024 wrapper (cc12m_1024x1024.yaml): same shape at [32, 32, 64]; its 256 level normalizes its input.
MDM1024 = LevelConfig(resolution=1024, channels=(32, 32, 64), num_resnets=(2, 2, 1), temporal_dim=1024)
_TEXT = dict(cond_dim=2048, cond_proj_dim=2048)  # flan-T5-XL tokens, projected 2048 -> 2048


_TINY32 = LevelConfig(resolution=32, channels=(16, 32), num_resnets=(1, 1), temporal_dim=64)
_TINY16 = LevelConfig(resolution=16, channels=(16, 32), num_resnets=(1, 1), attention_layers=(0, 1), attention_ffn=True,
                      mid_blocks=True)
_TINY = dict(cond_dim=24, cond_proj_dim=32, cond_tokens=4, masked_cross_attention=True, num_heads=2, norm_groups=4)


def _proc(power: float, weights: tuple[float, ...] = (), steps: int = 250) -> MultiResConfig:
    return MultiResConfig(shift_power=power, weights=weights, sample_steps=steps)


PRESETS: dict[str, Preset] = {
    "mdm-64": Preset(NestedUNetConfig(levels=(MDM64,), **_TEXT, process=_proc(1.0)), _OFFICIAL.format("cc12m_64x64")),
    "mdm-256": Preset(NestedUNetConfig(levels=(MDM256, MDM64), **_TEXT, process=_proc(1.0)),
                      _OFFICIAL.format("cc12m_256x256") + "; loss weights uniform (use_double_loss, no multi_res_weights)"),
    "mdm-1024": Preset(NestedUNetConfig(levels=(MDM1024, replace(MDM256, normalize_input=True), MDM64), **_TEXT,
                                        process=_proc(2.0, weights=(16.0, 4.0, 1.0))),
                       _OFFICIAL.format("cc12m_1024x1024") + " (multi_res_weights 16:4:1, schedule_shifted_power 2)"),
    "mdm-imagenet64": Preset(NestedUNetConfig(levels=(MDM64,), num_classes=1000, process=_proc(1.0)),
                             "ours: the official 64x64 U-Net with a class embedding instead of text tokens "
                             "(the spec's class-label variant); no official class-conditional config"),
    "mdm-tiny": Preset(NestedUNetConfig(levels=(_TINY32, _TINY16), **_TINY, process=_proc(1.0, weights=(4.0, 1.0), steps=20)),
                       "ours (tests and smoke runs): a 2-level nest 32 -> 16, widths 16/32"),
    "mdm-tiny-inner": Preset(NestedUNetConfig(levels=(_TINY16,), **_TINY, process=_proc(1.0, steps=20)),
                             "ours: mdm-tiny's 16 px inner U-Net alone, stage 1 of progressive mdm-tiny "
                             "(its checkpoint initializes mdm-tiny's inner U-Net through train.init)"),
}
