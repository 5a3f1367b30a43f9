"""SongUNet config and presets: the DDPM++ / NCSN++ U-Net (Song et al. 2021, "Score-Based
Generative Modeling through Stochastic Differential Equations") as EDM reimplements it (Karras et
al. 2022, NVlabs/edm training/networks.py `SongUNet`), the backbone of AGM's CIFAR-10 model
(apple/ml-agm networks/edm/ncsnpp.py, configs/cifar10_config.py get_edm_NCSNpp_config).
Standard library only.

The network's noise label is `time_scaling * t` fed straight to the embedding: AGM passes its
1 - t (time_scaling 1); EDM's preconditioners pass their c_noise instead (VP: 999 t). Not
implemented: EDM's augmentation-label input (augment_dim), label dropout, the `skip` encoder and
decoder types (ml-agm fixes the decoder to `standard`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from architectures.processes.config import GaussianConfig, with_null_label
from architectures.registry import Preset

EMBEDDINGS = ("fourier", "positional")  # NCSN++, DDPM++
ENCODERS = ("residual", "standard")  # NCSN++ (progressive input, residual), DDPM++


@dataclass(frozen=True)
class SongUNetConfig:
    image_size: int = 32
    in_channels: int = 3
    output_channels: int = 0  # 0: in_channels; the phase-space force net takes [x, v] (2C) and returns C
    model_channels: int = 128  # C: base width
    channel_mult: tuple[int, ...] = (2, 2, 2)  # level widths C * mult, one level per resolution
    channel_mult_emb: int = 4  # embedding vector: C * 4 channels
    channel_mult_noise: int = 2  # noise embedding: C * 2 channels (NCSN++), C * 1 (DDPM++)
    num_blocks: int = 4  # UNetBlocks per level in the encoder (num_blocks + 1 in the decoder)
    attn_resolutions: tuple[int, ...] = (16,)  # feature-map sizes with self-attention (+ always the first decoder block)
    dropout: float = 0.13
    embedding_type: str = "fourier"  # "fourier" (random frequencies, scale 16) or "positional" (sinusoid)
    encoder_type: str = "residual"  # "residual": the input, downsampled, is added back at every level
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)  # FIR resampling filter: (1, 3, 3, 1) NCSN++, (1, 1) DDPM++
    num_classes: int = 0  # 0 = unconditional; label num_classes is the null label (an all-zero one-hot)
    time_scaling: float = 1.0  # the noise label is time_scaling * t
    process: GaussianConfig = field(default_factory=GaussianConfig)

    def __post_init__(self):
        for name in ("image_size", "in_channels", "model_channels", "channel_mult_emb", "channel_mult_noise",
                     "num_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: >= 1")
        if self.output_channels < 0 or self.num_classes < 0:
            raise ValueError(f"output_channels={self.output_channels!r}, num_classes={self.num_classes!r}; allowed: >= 0")
        if not self.channel_mult or any(m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult={self.channel_mult!r}; allowed: non-empty, all >= 1")
        if self.image_size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"image_size={self.image_size} must be divisible by 2**(len(channel_mult)-1)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r}; allowed: [0, 1)")
        for name, value, allowed in [("embedding_type", self.embedding_type, EMBEDDINGS),
                                     ("encoder_type", self.encoder_type, ENCODERS)]:
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; allowed: {list(allowed)}")
        if not self.resample_filter or len(self.resample_filter) % 2 or any(v <= 0 for v in self.resample_filter):
            raise ValueError(f"resample_filter={self.resample_filter!r}; allowed: an even number of positive taps "
                             "(an odd filter makes the upsampled map one pixel short)")
        if self.noise_channels % 2 or self.noise_channels < 4:
            raise ValueError(f"model_channels * channel_mult_noise = {self.noise_channels}; allowed: even, >= 4")
        if self.time_scaling <= 0:
            raise ValueError(f"time_scaling={self.time_scaling!r}; allowed: > 0")
        if self.process.time_input != "t":
            raise ValueError(f"process.time_input={self.process.time_input!r}; allowed: ['t']")
        self._check_widths()
        object.__setattr__(self, "process", with_null_label(self.process, self.num_classes))  # label dropout drops to it

    def _check_widths(self):
        sizes = self.resolutions
        for r in self.attn_resolutions:
            if r not in sizes:
                raise ValueError(f"attn_resolutions={tuple(self.attn_resolutions)}: {r} matches no level's feature-map "
                                 f"size at image_size={self.image_size}; allowed: values in {list(sizes)}")
        for ch in {self.model_channels, *self.level_channels}:
            if ch < 4 or ch % norm_groups(ch):
                raise ValueError(f"a level has {ch} channels: GroupNorm uses min(32, channels // 4) groups, which must "
                                 f"divide it (model_channels={self.model_channels}, channel_mult={self.channel_mult})")

    @property
    def modality(self) -> str:
        return "image"

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(self.image_size >> level for level in range(len(self.channel_mult)))

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def emb_channels(self) -> int:
        return self.model_channels * self.channel_mult_emb

    @property
    def noise_channels(self) -> int:
        return self.model_channels * self.channel_mult_noise

    @property
    def out_channels(self) -> int:
        return self.output_channels or self.in_channels

    def key_dims(self) -> dict:
        return {"input": f"{self.image_size}x{self.image_size}x{self.in_channels}", "width": self.model_channels,
                "channel_mult": self.channel_mult, "blocks": self.num_blocks, "attention": self.attn_resolutions,
                "embedding": self.embedding_type, "encoder": self.encoder_type, "classes": self.num_classes}

    def input_shapes(self, batch: int) -> dict[str, tuple[tuple[int, ...], str]]:
        shapes = {"x": ((batch, self.image_size, self.image_size, self.in_channels), "float32"),
                  "t": ((batch,), "float32")}
        if self.num_classes > 0:
            shapes["y"] = ((batch,), "int32")
        return shapes


def norm_groups(channels: int) -> int:
    """EDM's GroupNorm: 32 groups, at least 4 channels per group."""
    return min(32, channels // 4)


def _gauss(steps: int = 100) -> GaussianConfig:
    return GaussianConfig(schedule="cosine", prediction="eps", time_input="t", sampler="ddim", sample_steps=steps)


# EDM train.py --arch=ncsnpp / ddpmpp on CIFAR-10 (SongUNet defaults: 4 blocks, attention at 16, emb x4)
_NCSNPP = dict(model_channels=128, channel_mult=(2, 2, 2), num_blocks=4, attn_resolutions=(16,), dropout=0.13,
               embedding_type="fourier", channel_mult_noise=2, encoder_type="residual", resample_filter=(1, 3, 3, 1))
_DDPMPP = dict(_NCSNPP, embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
               resample_filter=(1, 1))
_EDM_NOTE = ("the network only, unconditional and without EDM's augmentation-label input (augment_dim 9 in its "
             "CIFAR-10 runs); trained and sampled here by the harness's gaussian process (eps, cosine, DDIM), not "
             "EDM's preconditioning")

PRESETS: dict[str, Preset] = {
    "ncsnpp-cifar10": Preset(SongUNetConfig(**_NCSNPP, process=_gauss()),
                             "official NVlabs/edm train.py --arch=ncsnpp (training/networks.py SongUNet, dropout 0.13); "
                             "the backbone of apple/ml-agm configs/cifar10_config.py with 3 in / 3 out; " + _EDM_NOTE),
    "ddpmpp-cifar10": Preset(SongUNetConfig(**_DDPMPP, time_scaling=1000.0, process=_gauss()),
                             "official NVlabs/edm train.py --arch=ddpmpp (SongUNet, dropout 0.13); noise label "
                             "1000 t (EDM's VP preconditioner feeds 999 t); " + _EDM_NOTE),
    "songunet-tiny": Preset(SongUNetConfig(image_size=16, model_channels=16, channel_mult=(1, 2), num_blocks=1,
                                           attn_resolutions=(8,), dropout=0.0, num_classes=10, process=_gauss()),
                            "ours (tests and smoke runs): NCSN++ options at 16x16, 2 levels, class-conditional"),
}
