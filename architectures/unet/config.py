"""U-Net config and presets: ADM (Dhariwal & Nichol 2021) and its space-time video extension
(Ho et al. 2022, "Video Diffusion Models"). Standard library only.

Video (`frames > 0`): every 3x3 conv is a space-only 1x3x3 conv and every norm is per frame; both
are realized by folding frames into the batch, so 2D and 3D share the blocks and the 1x3x3
kernels are stored as 3x3. Each attention block is spatial attention (per frame, over H*W)
followed by temporal attention (per pixel, over frames) with a learned relative position bias
(one scalar per head and frame offset). Resampling is spatial only.

Frame conditioning (`cond_frames > 0`), our choice since the paper gives no code: the clip has
`frames` frames; the first `cond_frames` are given clean as `context`, the other
`frames - cond_frames` are the noisy input `x`. Every frame enters the network with
2 * in_channels + 1 channels: [noisy frame or zeros, clean context frame or zeros, mask], mask = 1
on context frames. The output is the prediction for the `x` frames only (context frames' outputs
are dropped), so a loss on the output covers only the predicted frames.

Joint image/video training (`independent_frames`): temporal attention is masked so each frame
attends only to itself; with per-frame norms, frames are then processed independently. The
model call can override it per example.

learn_sigma (Nichol & Dhariwal 2021): the output has 2 * in_channels channels, the prediction
followed by the variance interpolation v of Eq. 15; otherwise it has in_channels channels. The
process then trains L_hybrid and samples with the learned variance, which needs discrete time.

Time input: with a discrete-time process (DDPM/ADM presets) the network sees ADM's integer step k
as given (`time_scaling` 1); with continuous t in [0, 1] it scales t by 1000 before the sinusoid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from architectures.processes.config import GaussianConfig, with_null_label
from architectures.registry import Preset


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 32
    in_channels: int = 3
    model_channels: int = 128  # C; the time embedding has 4C channels
    channel_mult: tuple[float, ...] = (1, 2, 2, 2)  # floats: ADM-512 starts at 0.5
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes that get attention; see _check_attention
    num_heads: int = 1  # used when num_head_channels == 0
    num_head_channels: int = 0  # > 0: heads = channels // num_head_channels (ADM's -1 is our 0)
    use_new_attention_order: bool = False  # qkv split as (3, heads, d) instead of (heads, 3, d)
    use_scale_shift_norm: bool = False  # FiLM: GN(h) * (1 + s) + b instead of h + emb
    resblock_updown: bool = False  # resample with ResBlocks instead of (strided) convs
    dropout: float = 0.0
    learn_sigma: bool = False  # 2x output channels (iDDPM learned variance)
    output_channels: int = 0  # 0: in_channels; the phase-space force net takes [x, v] (2C) and returns C
    norm_groups: int = 32  # GroupNorm groups; tiny presets need fewer
    num_classes: int = 0  # 0 = unconditional; label num_classes is the null label
    frames: int = 0  # video: clip length incl. conditioning frames; 0 = image model
    cond_frames: int = 0  # video: leading frames given clean as `context`
    independent_frames: bool = False  # video: mask temporal attention to the diagonal (image batches)
    process: GaussianConfig = field(default_factory=GaussianConfig)

    def __post_init__(self):
        for name in ("image_size", "in_channels", "model_channels", "num_res_blocks", "num_heads", "norm_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: >= 1")
        if not self.channel_mult or any(m <= 0 for m in self.channel_mult):
            raise ValueError(f"channel_mult={self.channel_mult!r}; allowed: non-empty, all > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r}; allowed: [0, 1)")
        if self.image_size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"image_size={self.image_size} must be divisible by 2**(len(channel_mult)-1)")
        if self.process.time_input != "t":
            raise ValueError(f"process.time_input={self.process.time_input!r}; allowed: ['t']")
        if self.learn_sigma and not self.process.timesteps:
            raise ValueError("learn_sigma=True needs a discrete-time process (process.timesteps > 0): the hybrid "
                             "loss and the learned variance (iDDPM Eq. 15) are defined per discrete step")
        self._check_channels()
        self._check_video()
        self._check_attention()
        object.__setattr__(self, "process", with_null_label(self.process, self.num_classes))  # label dropout drops to it

    def _check_channels(self):
        for ch in sorted(set(self.level_channels) | {self.level_channels[0]}):
            if ch % self.norm_groups:
                raise ValueError(f"norm_groups={self.norm_groups} must divide every level's channels {self.level_channels}")
            if self.num_head_channels and ch % self.num_head_channels:
                raise ValueError(f"num_head_channels={self.num_head_channels} must divide channels {ch}")
            if not self.num_head_channels and ch % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} must divide channels {ch}")

    def _check_video(self):
        if self.output_channels < 0:
            raise ValueError(f"output_channels={self.output_channels!r}; allowed: >= 0 (0 = in_channels)")
        if self.frames < 0 or self.cond_frames < 0 or self.num_classes < 0 or self.num_head_channels < 0:
            raise ValueError("frames, cond_frames, num_classes, num_head_channels; allowed: >= 0")
        if not self.frames and (self.cond_frames or self.independent_frames):
            raise ValueError("cond_frames / independent_frames need a video model (frames > 0)")
        if self.frames and self.cond_frames >= self.frames:
            raise ValueError(f"cond_frames={self.cond_frames} must be < frames={self.frames}")

    def _check_attention(self):
        """ADM's convention: r gives attention to the level whose downsample factor is
        image_size // r, i.e. whose feature map is r x r. The value is tied to image_size: sweeping
        image_size moves attention to another level, and a value that matches no level (ADM drops
        it silently) is an error here. The middle block always has attention."""
        sizes = [self.image_size // 2 ** level for level in range(len(self.channel_mult))]
        for r in self.attention_resolutions:
            if r not in sizes:
                raise ValueError(f"attention_resolutions={tuple(self.attention_resolutions)}: {r} matches no level's "
                                 f"feature-map size at image_size={self.image_size}; allowed: values in {sizes}")

    @property
    def modality(self) -> str:
        return "video" if self.frames else "image"

    @property
    def level_channels(self) -> tuple[int, ...]:
        return tuple(int(m * self.model_channels) for m in self.channel_mult)

    @property
    def attention_ds(self) -> frozenset[int]:
        """Downsample factors with attention (ADM's `image_size // resolution`)."""
        return frozenset(self.image_size // r for r in self.attention_resolutions)

    @property
    def time_scaling(self) -> float:
        """Multiplier of the time input before the sinusoid: 1 for ADM's integer step k (discrete
        time), 1000 for continuous t in [0, 1]."""
        return 1.0 if self.process.timesteps else 1000.0

    @property
    def emb_channels(self) -> int:
        return 4 * self.model_channels

    @property
    def net_in_channels(self) -> int:
        return 2 * self.in_channels + 1 if self.cond_frames else self.in_channels

    @property
    def out_channels(self) -> int:
        base = self.output_channels or self.in_channels
        return 2 * base if self.learn_sigma else base

    @property
    def out_frames(self) -> int:
        return self.frames - self.cond_frames

    def heads(self, channels: int) -> int:
        return channels // self.num_head_channels if self.num_head_channels else self.num_heads

    def input_shapes(self, batch: int) -> dict[str, tuple[tuple[int, ...], str]]:
        hwc = (self.image_size, self.image_size, self.in_channels)
        x = (batch, self.out_frames, *hwc) if self.frames else (batch, *hwc)
        shapes = {"x": (x, "float32"), "t": ((batch,), "float32")}
        if self.num_classes > 0:
            shapes["y"] = ((batch,), "int32")
        if self.cond_frames:
            shapes["context"] = ((batch, self.cond_frames, *hwc), "float32")
        return shapes


def _gauss(schedule: str, steps: int = 250, timesteps: int = 0, rescale: bool = False) -> GaussianConfig:
    """eps-prediction, ancestral sampling. timesteps > 0: discrete time as the official code
    (T steps, the network sees the integer k, sampling respaced to `steps`)."""
    return GaussianConfig(schedule=schedule, prediction="eps", time_input="t", sampler="ddpm", sample_steps=steps,
                          timesteps=timesteps, rescale_timesteps=rescale)


_ADM = dict(use_scale_shift_norm=True, resblock_updown=True, learn_sigma=True, num_classes=1000)

PRESETS_2D: dict[str, Preset] = {
    "ddpm-cifar10": Preset(UNetConfig(
        image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16,),
        num_heads=1, dropout=0.1, process=_gauss("ddpm_linear", steps=1000, timesteps=1000)),
        "paper (Ho et al. 2020, App. B: 35.7M params; T = 1000 linear betas, sampled with all 1000 steps, "
        "sigma^2 = beta), as ADM's UNetModel without scale-shift"),
    "iddpm-32": Preset(UNetConfig(
        image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=3, attention_resolutions=(16, 8),
        num_heads=4, use_scale_shift_norm=True, learn_sigma=True, dropout=0.3,
        process=_gauss("cosine_iddpm", steps=4000, timesteps=4000, rescale=True)),
        "official flags (openai/improved-diffusion README, CIFAR-10 L_hybrid: 128 ch, 3 blocks, dropout 0.3, "
        "--diffusion_steps 4000 --noise_schedule cosine, default rescale_timesteps/rescale_learned_sigmas); "
        "sampled with the full 4000-step chain"),
    "adm-imagenet64": Preset(UNetConfig(
        image_size=64, model_channels=192, channel_mult=(1, 2, 3, 4), num_res_blocks=3,
        attention_resolutions=(32, 16, 8), num_head_channels=64, use_new_attention_order=True, dropout=0.1,
        process=_gauss("cosine_iddpm", steps=250, timesteps=1000), **_ADM),
        "official flags (openai/guided-diffusion README, 64x64 model: --diffusion_steps 1000 --noise_schedule "
        "cosine; FIDs sampled with --timestep_respacing 250)"),
    "adm-imagenet128": Preset(UNetConfig(
        image_size=128, model_channels=256, channel_mult=(1, 1, 2, 3, 4), num_res_blocks=2,
        attention_resolutions=(32, 16, 8), num_heads=4, process=_gauss("ddpm_linear", steps=250, timesteps=1000),
        **_ADM),
        "official flags (openai/guided-diffusion README, 128x128 model: linear, T = 1000, respaced to 250 steps)"),
    "adm-imagenet256": Preset(UNetConfig(
        image_size=256, model_channels=256, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
        attention_resolutions=(32, 16, 8), num_head_channels=64,
        process=_gauss("ddpm_linear", steps=250, timesteps=1000), **_ADM),
        "official flags (openai/guided-diffusion README, 256x256 class-conditional model: linear, T = 1000, "
        "respaced to 250 steps)"),
    "unet2d-tiny": Preset(UNetConfig(
        image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
        num_heads=2, use_scale_shift_norm=True, norm_groups=4, num_classes=10, process=_gauss("cosine", steps=100)),
        "ours (tests and smoke runs)"),
}

PRESETS_3D: dict[str, Preset] = {
    "vdm-kinetics": Preset(UNetConfig(
        image_size=64, model_channels=128, channel_mult=(1, 2, 4, 8), num_res_blocks=2,
        attention_resolutions=(8, 16, 32), num_head_channels=64, use_scale_shift_norm=True, frames=16,
        cond_frames=5, process=_gauss("cosine")),
        "not verified against the paper's table (Ho et al. 2022, Kinetics-600 16x64x64, 5 context frames)"),
    "unet3d-tiny": Preset(UNetConfig(
        image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
        num_heads=2, use_scale_shift_norm=True, norm_groups=4, frames=4, cond_frames=1,
        process=_gauss("cosine", steps=100)),
        "ours (tests and smoke runs)"),
}
