"""DiT config and presets (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers",
arXiv 2212.09748; official code facebookresearch/DiT, models.py). Standard library only.

The paper's models run on the 32x32x4 latent of a 256x256 image (Stable Diffusion's VAE, 8x
downsampling; 64x64x4 for 512x512). The harness feeds that latent directly: no VAE is run or
downloaded, and the counts below exclude the VAE, as the paper's do. `dit-b-4-pixel64` is ours:
the same network on 64x64 RGB pixels.

learn_sigma (Nichol & Dhariwal 2021): the output has 2 * in_channels channels, the prediction
followed by the variance interpolation v (the paper's Sec. 3.1); otherwise in_channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from architectures.processes.config import GaussianConfig, with_null_label
from architectures.registry import Preset


@dataclass(frozen=True)
class DiTConfig:
    input_size: int = 32  # I: the latent's height = width
    in_channels: int = 4  # C: 4 for the SD-VAE latent, 3 for pixels
    patch_size: int = 2  # p: patchify conv kernel = stride; T = (I / p)^2 tokens
    hidden_size: int = 1152  # d: token width
    depth: int = 28  # N: DiT blocks
    num_heads: int = 16
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * d
    frequency_embedding_size: int = 256  # sinusoid of t before the time MLP
    learn_sigma: bool = True  # 2x output channels (mean | variance interpolation)
    num_classes: int = 1000  # 0 = unconditional; label num_classes is the null label (table has +1 rows)
    process: GaussianConfig = field(default_factory=lambda: _adm_process())

    def __post_init__(self):
        for name in ("input_size", "in_channels", "patch_size", "hidden_size", "depth", "num_heads",
                     "frequency_embedding_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: >= 1")
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size={self.input_size} must be divisible by patch_size={self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide hidden_size={self.hidden_size}")
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size={self.hidden_size}; allowed: multiples of 4 (2D sin-cos position code)")
        if self.frequency_embedding_size % 2:
            raise ValueError(f"frequency_embedding_size={self.frequency_embedding_size}; allowed: even")
        if self.mlp_ratio <= 0 or self.num_classes < 0:
            raise ValueError(f"mlp_ratio={self.mlp_ratio!r}, num_classes={self.num_classes!r}; allowed: > 0, >= 0")
        if self.process.time_input != "t":
            raise ValueError(f"process.time_input={self.process.time_input!r}; allowed: ['t']")
        if self.learn_sigma and not self.process.timesteps:
            raise ValueError("learn_sigma needs a discrete-time process (process.timesteps > 0): the VLB term and "
                             "beta~ are defined per discrete step")
        object.__setattr__(self, "process", with_null_label(self.process, self.num_classes))  # label dropout drops to it

    @property
    def time_scaling(self) -> float:
        """Multiplier of the time input before the sinusoid: 1 for ADM's integer step k (discrete
        time, as DiT trains), 1000 for continuous t in [0, 1]."""
        return 1.0 if self.process.timesteps else 1000.0

    @property
    def modality(self) -> str:
        return "image"

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid ** 2

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    def key_dims(self) -> dict:
        return {"input": f"{self.input_size}x{self.input_size}x{self.in_channels}", "patch": self.patch_size,
                "tokens": self.num_tokens, "width": self.hidden_size, "depth": self.depth, "heads": self.num_heads,
                "learn_sigma": self.learn_sigma, "classes": self.num_classes}

    def input_shapes(self, batch: int) -> dict[str, tuple[tuple[int, ...], str]]:
        shapes = {"x": ((batch, self.input_size, self.input_size, self.in_channels), "float32"),
                  "t": ((batch,), "float32")}
        if self.num_classes > 0:
            shapes["y"] = ((batch,), "int32")
        return shapes


def _adm_process(steps: int = 250) -> GaussianConfig:
    """ADM's diffusion as DiT trains it (create_diffusion): linear betas over T = 1000 discrete
    steps, eps prediction, learned sigma with the hybrid loss; the paper's FIDs sample 250 DDPM steps.
    Guidance (when a suite sets guidance_scale) as the official forward_with_cfg: one batch-2B call,
    only the first 3 eps channels guided ("for exact reproducibility", models.py); trained for it
    with each label dropped to the null label with probability 0.1 (DiT(class_dropout_prob=0.1),
    LabelEmbedder.token_drop)."""
    return GaussianConfig(schedule="ddpm_linear", prediction="eps", time_input="t", sampler="ddpm", sample_steps=steps,
                          timesteps=1000, guidance_mode="batched", guided_channels=3, cond_drop_prob=0.1)


_SIZES = {  # name: (depth, hidden_size, num_heads), Table 1
    "s": (12, 384, 6), "b": (12, 768, 12), "l": (24, 1024, 16), "xl": (28, 1152, 16),
}


def _paper(size: str, patch: int, input_size: int = 32) -> DiTConfig:
    depth, width, heads = _SIZES[size]
    return DiTConfig(input_size=input_size, patch_size=patch, hidden_size=width, depth=depth, num_heads=heads)


PRESETS: dict[str, Preset] = {
    **{f"dit-{size}-{patch}": Preset(_paper(size, patch),
                                     f"paper (Peebles & Xie 2023, Tables 1 and 4: DiT-{size.upper()}/{patch}, 256x256 "
                                     "ImageNet as a 32x32x4 latent); official models.py DiT_models")
       for size in _SIZES for patch in (2, 4, 8)},
    "dit-xl-2-512": Preset(_paper("xl", 2, input_size=64),
                           "paper (Peebles & Xie 2023: DiT-XL/2 at 512x512 ImageNet, a 64x64x4 latent, 524.6 Gflops)"),
    "dit-b-4-pixel64": Preset(DiTConfig(input_size=64, in_channels=3, patch_size=4, hidden_size=768, depth=12,
                                        num_heads=12),
                              "ours: DiT-B/4 on 64x64 RGB pixels (256 tokens, as DiT-B/2 on the 256x256 latent)"),
    "dit-tiny": Preset(DiTConfig(input_size=8, in_channels=4, patch_size=2, hidden_size=32, depth=2, num_heads=2,
                                 frequency_embedding_size=32, num_classes=10, process=_adm_process(steps=100)),
                       "ours (tests and smoke runs)"),
}
