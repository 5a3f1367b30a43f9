"""Phase-space process settings (AGM, Chen et al. 2023), standard library only."""

from __future__ import annotations

from dataclasses import dataclass

PHASE_SAMPLERS = ("gddim", "em")
OUTPUTS = ("hop", "state")


@dataclass(frozen=True)
class PhaseSpaceProcessConfig:
    """The phase stochastic bridge dx = v dt, dv = a dt + g_t dW, g_t = p (1 - t); data at t = 1.

    Defaults are the official CIFAR-10 config (apple/ml-agm configs/cifar10_config.py) and the
    sampling defaults of its sampling.py (gDDIM, r = 2, rev-quad grid, --pred-x1).
    """

    p: float = 3.0  # diffusion scale, g_t = p (1 - t)
    k: float = 0.2  # the prior's x-v correlation is -k (official sign: Sigma_xv(0) = -k sqrt(varx varv))
    varx: float = 1.0  # prior variance of x_0
    varv: float = 1.0  # prior variance of v_0
    t_min: float = 1e-5  # t0: training times t ~ U[t_min, t_max]; the sampler starts here
    t_max: float = 0.999  # T of training; the sampler's last step ends here
    sampler: str = "gddim"  # "gddim" (exponential integrator, multistep) or "em" (Euler-Maruyama)
    sample_steps: int = 20  # NFE of one sampling run (one force evaluation per step)
    gddim_order: int = 2  # r: degree of the force's Lagrange extrapolation (official --gDDIM-r 2)
    hop_time: float = 0.9  # T of sampling: the grid ends here; "hop" output estimates x_1 at T
    output: str = "hop"  # "hop": closed-form x_1 estimate at the last grid time; "state": x at t_max

    def __post_init__(self):
        for name, value, allowed in [("sampler", self.sampler, PHASE_SAMPLERS), ("output", self.output, OUTPUTS)]:
            if value not in allowed:
                raise ValueError(f"process.{name}={value!r}; allowed: {list(allowed)}")
        if self.sample_steps < 1:
            raise ValueError(f"process.sample_steps={self.sample_steps!r}; allowed: >= 1")
        if self.gddim_order < 0:
            raise ValueError(f"process.gddim_order={self.gddim_order!r}; allowed: >= 0")
        if self.p <= 0 or self.varx <= 0 or self.varv <= 0:
            raise ValueError(f"process.p, varx, varv = {self.p}, {self.varx}, {self.varv}; allowed: > 0")
        if not -1.0 < self.k < 1.0:
            raise ValueError(f"process.k={self.k!r}; allowed: (-1, 1) (a correlation)")
        if not 0.0 < self.t_min < self.hop_time <= self.t_max < 1.0:
            raise ValueError(f"process t_min={self.t_min}, hop_time={self.hop_time}, t_max={self.t_max}; "
                             "allowed: 0 < t_min < hop_time <= t_max < 1")
