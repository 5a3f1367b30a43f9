"""Settings of the multi-resolution process (Matryoshka Diffusion), standard library only."""

from __future__ import annotations

from dataclasses import dataclass

from architectures.processes.config import GUIDANCE_MODES

SAMPLERS = ("ddpm", "ddim")


@dataclass(frozen=True)
class MultiResConfig:
    """Discrete-time v-prediction diffusion of several resolutions at once (Gu et al. 2024, Sec. 3;
    ml-mdm diffusion.py NestedDiffusion, samplers.py NestedSampler)."""

    steps: int = 1000  # discrete diffusion steps T (the network sees the timestep 0..T-1)
    shift_power: float = 1.0  # p in SNR_r = SNR / s^p, s = resolution / lowest resolution (0 = no shift)
    weights: tuple[float, ...] = ()  # loss weight per resolution, highest first; () = all 1
    resolutions: tuple[int, ...] = ()  # filled by the model config (its levels' sides, highest first)
    sampler: str = "ddpm"  # ancestral with the posterior variance (the official default), or DDIM (eta 0)
    sample_steps: int = 250  # respaced as ml-mdm set_timesteps (steps = T walks every step)
    guidance_scale: float = 0.0  # w of (1 + w) pred_c - w pred_u (ml-mdm's guidance_scale is 1 + w)
    guidance_mode: str = "batched"  # "batched": one batch-2B call; "two_calls": two batch-B calls (guidance.py)
    cond_drop_prob: float = 0.0  # training: P(an example's condition becomes the null); ml-mdm's trainer: 0
    null_label: int = -1  # filled by the model config: its null class label (num_classes); -1 = none or tokens

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"process.sampler={self.sampler!r}; allowed: {list(SAMPLERS)}")
        if self.guidance_mode not in GUIDANCE_MODES:
            raise ValueError(f"process.guidance_mode={self.guidance_mode!r}; allowed: {list(GUIDANCE_MODES)}")
        if self.steps < 2 or not 1 <= self.sample_steps <= self.steps:
            raise ValueError(f"process.steps={self.steps}, sample_steps={self.sample_steps}; allowed: "
                             "steps >= 2 and 1 <= sample_steps <= steps")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"process.cond_drop_prob={self.cond_drop_prob!r}; allowed: [0, 1)")
        if self.shift_power < 0 or self.guidance_scale < 0:
            raise ValueError("process.shift_power, process.guidance_scale; allowed: >= 0")
        if any(w < 0 for w in self.weights) or (self.weights and self.resolutions
                                                and len(self.weights) != len(self.resolutions)):
            raise ValueError(f"process.weights={self.weights!r}: one value >= 0 per resolution {self.resolutions}")
        if any(r < 1 for r in self.resolutions) or list(self.resolutions) != sorted(self.resolutions, reverse=True):
            raise ValueError(f"process.resolutions={self.resolutions!r}: sides >= 1, highest first")

    @property
    def prediction(self) -> str:
        return "v"  # what the network outputs (the loss is in eps space, see multires.py)

    @property
    def time_input(self) -> str:
        return "t"
