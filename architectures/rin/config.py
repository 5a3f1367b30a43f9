"""RIN config and presets (Jabri, Fleet, Chen 2023, arXiv 2212.11972). Standard library only.

Names follow the RIN paper (docs/architectures/rin.md): the interface X has n tokens of width D_x
(`interface_dim`), the latents Z have m tokens of width D_z (`latent_dim`); m counts the time
token and the class token, so m - 2 latents are learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from architectures.processes.config import GaussianConfig, with_null_label
from architectures.registry import Preset


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class RINConfig:
    image_size: int = 32
    channels: int = 3
    patch_size: int = 2  # p: stem kernel = stride
    frames: int = 0  # video: clip length incl. conditioning frames; 0 = image model
    temporal_patch: int = 1  # s_t: temporal stem kernel = stride (video)
    cond_frames: int = 0  # video: leading frames given as `context`, read and written, not output
    interface_dim: int = 256  # D_x
    num_latents: int = 128  # m, incl. the time and class tokens
    latent_dim: int = 512  # D_z
    num_blocks: int = 3  # read -> K x process -> write blocks, weights not shared
    process_layers: int = 2  # K
    latent_heads: int = 16
    rw_heads: int = 8  # read/write heads; head dim = min(D_x, D_z) / rw_heads
    latent_mlp_ratio: int = 4  # FFN hidden = ratio * D_z (read, process, self-cond MLP)
    tape_mlp_ratio: int = 2  # write FFN hidden = ratio * D_x; 0 skips the write FFN
    dropout: float = 0.0  # process layers only: FFN hidden units
    drop_path: float = 0.0  # process layers only: per-example residual drop
    time_scaling: float = 1000.0  # gamma is multiplied by this before the sinusoid
    num_classes: int = 0  # 0 = unconditional; label num_classes is the null label
    process: GaussianConfig = field(default_factory=lambda: GaussianConfig(time_input="gamma", self_condition_rate=0.9))

    def __post_init__(self):
        self._check_positive()
        self._check_divisible()
        self._check_video()
        for name in ("dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: [0, 1)")
        if self.tape_mlp_ratio < 0 or self.num_classes < 0:
            raise ValueError(f"tape_mlp_ratio={self.tape_mlp_ratio!r}, num_classes={self.num_classes!r}; allowed: >= 0")
        if self.process.time_input != "gamma":
            raise ValueError(f"process.time_input={self.process.time_input!r}; allowed: ['gamma'] (RIN sees the noise level)")
        object.__setattr__(self, "process", with_null_label(self.process, self.num_classes))  # label dropout drops to it

    def _check_positive(self):
        for name in ("image_size", "channels", "patch_size", "temporal_patch", "interface_dim", "latent_dim",
                     "num_blocks", "process_layers", "latent_heads", "rw_heads", "latent_mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: >= 1")
        if self.num_latents < 3:
            raise ValueError(f"num_latents={self.num_latents!r}; allowed: >= 3 (time token + class token + learned)")
        if self.time_scaling <= 0:
            raise ValueError(f"time_scaling={self.time_scaling!r}; allowed: > 0")

    def _check_divisible(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}")
        if self.latent_dim % self.latent_heads:
            raise ValueError(f"latent_heads={self.latent_heads} must divide latent_dim={self.latent_dim}")
        if self.rw_dim % self.rw_heads:
            raise ValueError(f"rw_heads={self.rw_heads} must divide min(interface_dim, latent_dim)={self.rw_dim}")
        if self.latent_dim % 8:
            raise ValueError(f"latent_dim={self.latent_dim}; allowed: multiples of 8 (sin|cos code of D_z/4 dims)")

    def _check_video(self):
        if self.frames < 0 or self.cond_frames < 0:
            raise ValueError(f"frames={self.frames}, cond_frames={self.cond_frames}; allowed: >= 0")
        if self.frames == 0 and (self.cond_frames or self.temporal_patch != 1):
            raise ValueError("cond_frames and temporal_patch need a video model (frames > 0); image models: 0 and 1")
        if self.frames and self.cond_frames >= self.frames:
            raise ValueError(f"cond_frames={self.cond_frames} must be < frames={self.frames}")

    @property
    def modality(self) -> str:
        return "video" if self.frames else "image"

    @property
    def rw_dim(self) -> int:
        return min(self.interface_dim, self.latent_dim)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def out_frames(self) -> int:
        """Frames the model predicts (the clip minus its conditioning frames)."""
        return self.frames - self.cond_frames

    @property
    def time_tokens(self) -> tuple[int, int]:
        """Temporal token counts of (x, context); frames are zero-padded at the end to s_t (TF 'SAME')."""
        if not self.frames:
            return 1, 0
        return _ceil_div(self.out_frames, self.temporal_patch), _ceil_div(self.cond_frames, self.temporal_patch)

    @property
    def num_tokens(self) -> int:
        """n: interface tokens of x (the ones read out)."""
        return self.time_tokens[0] * self.grid**2

    @property
    def num_context_tokens(self) -> int:
        return self.time_tokens[1] * self.grid**2

    @property
    def patch_dim(self) -> int:
        """Values per token at readout: s_t * p * p * C."""
        return self.temporal_patch * self.patch_size**2 * self.channels

    def input_shapes(self, batch: int) -> dict[str, tuple[tuple[int, ...], str]]:
        hw = (self.image_size, self.image_size, self.channels)
        x = (batch, self.out_frames, *hw) if self.frames else (batch, *hw)
        shapes = {"x": (x, "float32"), "t": ((batch,), "float32")}
        if self.num_classes > 0:
            shapes["y"] = ((batch,), "int32")
        if self.cond_frames:
            shapes["context"] = ((batch, self.cond_frames, *hw), "float32")
        shapes["latents"] = ((batch, self.num_latents, self.latent_dim), "float32")
        return shapes


def _process(schedule: str = "sigmoid", start: float = -3.0, end: float = 3.0, tau: float = 1.0,
             steps: int = 1000) -> GaussianConfig:
    # The official configs train on `schedule` and sample on cosine (infer_schedule='cosine') with
    # DDPM; `steps` is the sampling budget evaluated (their eval sweeps: CIFAR-10 400 and 1000,
    # ImageNet-64 100, 250 and 1000; the paper's Kinetics FVDs: 400 and 1000). Continuous time.
    return GaussianConfig(schedule=schedule, start=start, end=end, tau=tau, prediction="eps", time_input="gamma",
                          self_condition_rate=0.9, sampler="ddpm", sample_schedule="cosine", sample_steps=steps)


_IMAGENET = dict(channels=3, interface_dim=512, latent_heads=16, rw_heads=16, latent_mlp_ratio=4, tape_mlp_ratio=4,
                 num_classes=1000)
_LARGE = dict(_IMAGENET, num_latents=256, latent_dim=1024, num_blocks=6, process_layers=4, process=_process())

PRESETS: dict[str, Preset] = {
    "rin-cifar10": Preset(RINConfig(
        image_size=32, channels=3, patch_size=2, interface_dim=256, num_latents=128, latent_dim=512, num_blocks=3,
        process_layers=2, latent_heads=16, rw_heads=8, latent_mlp_ratio=4, tape_mlp_ratio=2, dropout=0.1,
        drop_path=0.1, num_classes=10, process=_process("sigmoid", -3.0, 3.0, 0.9)),
        "official config configs/config_diffusion_cifar10.py (pix2seq, tape sweep; sampled with DDPM on the cosine "
        "schedule, 1000 steps; its eval sweep also runs 400)"),
    "rin-imagenet64": Preset(RINConfig(
        image_size=64, patch_size=8, num_latents=128, latent_dim=768, num_blocks=4, process_layers=4,
        process=_process("linear", 0.0, 1.0, 1.0), **_IMAGENET),
        "official config configs/config_diffusion_imagenet64.py (pix2seq, tape sweep; paper text says patch 4; "
        "the paper's ImageNet-64 model appears larger than this released config, not verified; 1000 DDPM steps, "
        "its eval sweep also runs 100 and 250)"),
    "rin-imagenet64-p4": Preset(RINConfig(
        image_size=64, patch_size=4, num_latents=128, latent_dim=768, num_blocks=4, process_layers=4,
        process=_process("linear", 0.0, 1.0, 1.0), **_IMAGENET),
        "paper text (patch 4); other dims and the 1000 sampling steps from the official imagenet64 config"),
    "rin-imagenet128": Preset(RINConfig(image_size=128, patch_size=4, **_LARGE),
                              "not verified (paper-scale dims; 1000 sampling steps as the released configs)"),
    "rin-imagenet256": Preset(RINConfig(image_size=256, patch_size=8, **_LARGE),
                              "not verified (paper-scale dims; 1000 sampling steps as the released configs)"),
    "rin-kinetics": Preset(RINConfig(
        image_size=64, patch_size=4, frames=16, temporal_patch=2, cond_frames=5, **dict(_LARGE, num_classes=0)),
        "not verified (paper text: Kinetics-600 16x64x64, 5 conditioning frames; FVD reported at 400 and 1000 "
        "steps, 1000 here)"),
    "rin-tiny": Preset(RINConfig(
        image_size=16, channels=3, patch_size=2, interface_dim=32, num_latents=16, latent_dim=64, num_blocks=2,
        process_layers=1, latent_heads=4, rw_heads=2, latent_mlp_ratio=2, tape_mlp_ratio=1, num_classes=10,
        process=_process("sigmoid", -3.0, 3.0, 0.9, steps=100)),
        "ours (tests and smoke runs)"),
}
