"""Process settings, standard library only (imported by config modules at listing time)."""

from __future__ import annotations

from dataclasses import dataclass, replace

SCHEDULES = ("cosine", "cosine_iddpm", "cosine_shifted", "sigmoid", "linear", "ddpm_linear")  # see schedules.py
PREDICTIONS = ("eps", "x0", "v")
TIME_INPUTS = ("gamma", "t")
SAMPLERS = ("ddim", "ddpm")
DDPM_VARIANCES = ("large", "small")
GUIDANCE_MODES = ("batched", "two_calls")  # see guidance.py (kept here: config modules import the standard library only)


@dataclass(frozen=True)
class GaussianConfig:
    """Continuous-time gaussian diffusion, x_t = sqrt(g) x0 + sqrt(1-g) eps (Jabri et al. 2023, Sec. 3)."""

    schedule: str = "cosine"  # training noise schedule
    sample_schedule: str = ""  # the schedule the sampler walks; "" = `schedule` (RIN: trains on sigmoid/linear, samples on cosine)
    start: float = 0.0  # cosine_shifted / sigmoid: start of the t -> angle / logit map
    end: float = 1.0  # cosine_shifted / sigmoid: end of that map
    tau: float = 1.0  # cosine_shifted / sigmoid: temperature
    prediction: str = "eps"  # what the network outputs
    time_input: str = "t"  # what the network sees as time: the noise level gamma (RIN) or t
    self_condition_rate: float = 0.0  # RIN latent self-conditioning: 0.9 in the paper
    sampler: str = "ddim"
    ddpm_variance: str = "large"  # "large": 1 - alpha; "small": posterior variance
    sample_steps: int = 100
    time_difference: float = 0.0  # RIN's td: shifts t_next earlier by td / steps
    guidance_scale: float = 0.0  # classifier-free guidance weight w (0 = off)
    guidance_mode: str = "batched"  # "batched": one batch-2B call as the official samplers; "two_calls": two batch-B calls
    guided_channels: int = 0  # c > 0: guide only the first c prediction channels (DiT's official sampler: 3); 0 = all
    timesteps: int = 0  # T > 0: discrete time as DDPM/ADM (t = integer step 0..T-1, see discrete.py); 0: t in [0, 1]
    rescale_timesteps: bool = False  # discrete: the network sees k * 1000 / T (improved-diffusion) instead of k (ADM)
    vlb_weight: float = 0.001  # lambda of L_hybrid = L_simple + lambda L_vlb (iDDPM Sec. 3.1), learned-variance models
    cond_drop_prob: float = 0.0  # training: P(an example's class label becomes the null label); DiT: 0.1
    null_label: int = -1  # filled by the model config: its null class label (num_classes); -1 = no classes

    def __post_init__(self):
        for name, value, allowed in [
            ("schedule", self.schedule, SCHEDULES),
            ("prediction", self.prediction, PREDICTIONS),
            ("time_input", self.time_input, TIME_INPUTS),
            ("sampler", self.sampler, SAMPLERS),
            ("ddpm_variance", self.ddpm_variance, DDPM_VARIANCES),
            ("sample_schedule", self.sample_schedule, ("", *SCHEDULES)),
            ("guidance_mode", self.guidance_mode, GUIDANCE_MODES),
        ]:
            if value not in allowed:
                raise ValueError(f"process.{name}={value!r}; allowed: {list(allowed)}")
        if not 0.0 <= self.self_condition_rate <= 1.0:
            raise ValueError(f"process.self_condition_rate={self.self_condition_rate!r}; allowed: [0, 1]")
        if self.sample_steps < 1:
            raise ValueError(f"process.sample_steps={self.sample_steps!r}; allowed: >= 1")
        if self.tau <= 0:
            raise ValueError(f"process.tau={self.tau!r}; allowed: > 0")
        if self.schedule in ("cosine_shifted", "sigmoid") and not self.start < self.end:
            raise ValueError(f"process.start={self.start!r} must be < process.end={self.end!r}")
        if self.schedule == "cosine_shifted" and not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"process.start={self.start!r}, end={self.end!r}; cosine_shifted needs 0 <= start < end <= 1")
        if self.time_difference < 0:
            raise ValueError(f"process.time_difference={self.time_difference!r}; allowed: >= 0")
        if self.guidance_scale < 0:
            raise ValueError(f"process.guidance_scale={self.guidance_scale!r}; allowed: >= 0")
        if self.guided_channels < 0:
            raise ValueError(f"process.guided_channels={self.guided_channels!r}; allowed: >= 0 (0 = all channels)")
        if self.vlb_weight < 0:
            raise ValueError(f"process.vlb_weight={self.vlb_weight!r}; allowed: >= 0")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"process.cond_drop_prob={self.cond_drop_prob!r}; allowed: [0, 1)")
        self._check_discrete()

    def _check_discrete(self):
        if self.timesteps < 0:
            raise ValueError(f"process.timesteps={self.timesteps!r}; allowed: 0 (continuous time) or T >= 1")
        if not self.timesteps:
            if self.rescale_timesteps:
                raise ValueError("process.rescale_timesteps=True needs discrete time (process.timesteps > 0)")
            return
        if self.sample_steps > self.timesteps:
            raise ValueError(f"process.sample_steps={self.sample_steps!r}; allowed: <= process.timesteps={self.timesteps}")
        if self.time_difference or self.sample_schedule not in ("", self.schedule):
            raise ValueError("process.time_difference and process.sample_schedule need continuous time "
                             "(process.timesteps = 0)")


def with_null_label(process, num_classes: int, tokens: bool = False):
    """The model config's process (gaussian or multi-resolution) with its null label (label
    num_classes; -1 without classes). Condition dropout (cond_drop_prob > 0) needs a condition to
    drop, class labels or conditioning `tokens` (their null is the null text): refused without."""
    if process.cond_drop_prob > 0 and num_classes <= 0 and not tokens:
        raise ValueError(f"process.cond_drop_prob={process.cond_drop_prob}: the model has no condition to drop "
                         "(num_classes = 0, no conditioning tokens); allowed: 0")
    null = num_classes if num_classes > 0 else -1
    return process if process.null_label == null else replace(process, null_label=null)
