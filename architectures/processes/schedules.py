"""Noise schedules gamma(t) of the continuous-time gaussian process, for any array namespace.

gamma(t) is the signal level: x_t = sqrt(gamma) x0 + sqrt(1 - gamma) eps, with gamma(0) ~ 1 and
gamma(1) ~ 0 (Jabri et al. 2023, Sec. 3; Chen 2023, "On the importance of noise scheduling").
Every schedule is clipped to [GAMMA_MIN, 1] as in the official code (pix2seq diffusion_utils).
Constants that do not depend on t are computed in float64 Python arithmetic.
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from architectures.processes.config import GaussianConfig

GAMMA_MIN = 1e-9


def _sigmoid(xp, x):
    return 1.0 / (1.0 + xp.exp(-x))


def cosine(t):
    """cos^2(((t + 2e-4) / (1 + 2.5e-4)) pi/2): the small shifts keep gamma(0) < 1 and gamma(1) > 0."""
    xp = array_namespace(t)
    return xp.cos(((t + 2e-4) / (1.0 + 2.5e-4)) * (math.pi / 2)) ** 2


IDDPM_OFFSET = 0.008  # s of Nichol & Dhariwal 2021, Eq. 17


def cosine_iddpm(t):
    """f(t) / f(0), f(t) = cos^2(((t + s) / (1 + s)) pi/2), s = 0.008 (Nichol & Dhariwal 2021, Eq. 17).
    In discrete time the betas are also clipped at 0.999 (discrete.py)."""
    xp = array_namespace(t)
    f0 = math.cos(IDDPM_OFFSET / (1.0 + IDDPM_OFFSET) * math.pi / 2) ** 2
    return xp.cos(((t + IDDPM_OFFSET) / (1.0 + IDDPM_OFFSET)) * (math.pi / 2)) ** 2 / f0


def cosine_shifted(t, start: float, end: float, tau: float):
    """[cos((t(e-s)+s) pi/2)^(2 tau) - cos(e pi/2)^(2 tau)] / [cos(s pi/2)^(2 tau) - cos(e pi/2)^(2 tau)].

    The cosine is clamped at 0 before the power: at end = 1, float32 cos(pi/2) is -4e-8, and a
    negative base to a fractional power is NaN; on [0, pi/2] the clamp changes nothing.
    """
    xp = array_namespace(t)
    y_start = max(math.cos(start * math.pi / 2), 0.0) ** (2 * tau)
    y_end = max(math.cos(end * math.pi / 2), 0.0) ** (2 * tau)
    c = xp.clip(xp.cos((t * (end - start) + start) * (math.pi / 2)), 0.0, None)
    return (c ** (2 * tau) - y_end) / (y_start - y_end)


def sigmoid(t, start: float, end: float, tau: float):
    """[sig(e/tau) - sig((t(e-s)+s)/tau)] / [sig(e/tau) - sig(s/tau)] (Chen 2023, Alg. 1)."""
    xp = array_namespace(t)
    v_start = 1.0 / (1.0 + math.exp(-start / tau))
    v_end = 1.0 / (1.0 + math.exp(-end / tau))
    return (v_end - _sigmoid(xp, (t * (end - start) + start) / tau)) / (v_end - v_start)


def linear(t):
    return 1.0 - t


def ddpm_linear(t, beta_min: float = 0.1, beta_max: float = 20.0):
    """DDPM's linear beta schedule (1e-4 .. 0.02 over 1000 steps) in continuous time:
    exp(-int_0^t beta(s) ds), beta(s) = beta_min + s (beta_max - beta_min) (Song et al. 2021, Eq. 33)."""
    xp = array_namespace(t)
    return xp.exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t**2))


def gamma(t, config: GaussianConfig, name: str | None = None):
    """Schedule `name` (default: the configured training schedule) at t (any shape), clipped to
    [GAMMA_MIN, 1]; shifted/sigmoid schedules take the config's start, end and tau."""
    xp = array_namespace(t)
    name = name or config.schedule
    if name == "cosine":
        g = cosine(t)
    elif name == "cosine_iddpm":
        g = cosine_iddpm(t)
    elif name == "cosine_shifted":
        g = cosine_shifted(t, config.start, config.end, config.tau)
    elif name == "sigmoid":
        g = sigmoid(t, config.start, config.end, config.tau)
    elif name == "linear":
        g = linear(t)
    elif name == "ddpm_linear":
        g = ddpm_linear(t)
    else:  # GaussianConfig validates the name; this guards a new name added there only
        raise ValueError(f"schedule {name!r} has no implementation")
    return xp.clip(g, GAMMA_MIN, 1.0)
