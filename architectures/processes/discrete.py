"""Discrete time as in DDPM, iDDPM and ADM: T steps k = 0..T-1, the network sees the integer k,
and sampling with fewer steps walks a respaced subset of the original indices.

The official code (openai/guided-diffusion gaussian_diffusion.py and respace.py) precomputes its
coefficients in float64 numpy. So does `Tables`, once per process; the process gathers them in
the data's namespace and dtype. Index -1 stands for "no noise" (gamma = 1), the state after the
last sampling step. log gamma is kept as a float32 pair (hi + lo) so that the difference of two
neighbouring steps - a small beta - keeps float64 accuracy in float32 arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace, is_torch_array

from architectures.processes import schedules

MAX_BETA = 0.999  # iDDPM clips the cosine schedule's betas (Nichol & Dhariwal 2021, Sec. 3.2)


def betas(config) -> np.ndarray:
    """float64 betas of the configured training schedule over T = config.timesteps steps.

    ddpm_linear: linspace(1e-4, 0.02) scaled by 1000 / T (Ho et al. 2020; guided-diffusion's
    "linear"); cosine_iddpm: 1 - abar((k+1)/T) / abar(k/T) clipped at 0.999 (iDDPM Eq. 17);
    any other schedule: its gamma at t = (k + 1) / T.
    """
    n, name = config.timesteps, config.schedule
    if name == "ddpm_linear":
        scale = 1000.0 / n
        return np.linspace(scale * 1e-4, scale * 0.02, n, dtype=np.float64)
    if name == "cosine_iddpm":
        s = schedules.IDDPM_OFFSET
        abar = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return np.array([min(1 - abar((k + 1) / n) / abar(k / n), MAX_BETA) for k in range(n)])
    gamma = np.asarray(schedules.gamma(np.arange(1, n + 1, dtype=np.float64) / n, config), np.float64)
    return 1.0 - gamma / np.concatenate([[1.0], gamma[:-1]])


def respaced(timesteps: int, steps: int) -> list[int]:
    """The original indices a `steps`-step sampler visits, ascending: evenly strided and rounded
    (guided-diffusion respace.space_timesteps with one section, e.g. "250")."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"sampling steps={steps}; allowed: 1..{timesteps} (the process's timesteps)")
    stride = 1.0 if steps <= 1 else (timesteps - 1) / (steps - 1)
    taken, position = set(), 0.0
    for _ in range(steps):  # accumulated, not i * stride: the float sums round like the official ones
        taken.add(round(position))
        position += stride
    return sorted(taken)


def _const(table: np.ndarray, like):
    """A host table as an array of like's namespace, dtype and device."""
    xp = array_namespace(like)
    if is_torch_array(like):
        return xp.asarray(table, dtype=like.dtype, device=like.device)
    return xp.asarray(table.astype(like.dtype))  # numpy and jax dtypes are numpy dtypes


class Tables:
    """Per-index float64 tables (index k + 1 holds step k, index 0 the noise-free state)."""

    def __init__(self, config):
        b = betas(config)
        log_gamma = np.concatenate([[0.0], np.cumsum(np.log1p(-b))])
        self.timesteps = config.timesteps
        self.gamma = np.exp(log_gamma)
        self.one_minus_gamma = -np.expm1(log_gamma)
        self.log_gamma_hi = log_gamma.astype(np.float32).astype(np.float64)
        self.log_gamma_lo = log_gamma - self.log_gamma_hi

    def take(self, table: np.ndarray, t):
        """table[t + 1] for integer-valued t of any float dtype (t = -1: noise free)."""
        xp = array_namespace(t)
        index = xp.astype(t, xp.int32) + 1
        return xp.take(_const(table, t), index)

    def log_ratio(self, t, s):
        """log(gamma_t / gamma_s) from the hi/lo pair: exact for neighbouring steps."""
        hi = self.take(self.log_gamma_hi, t) - self.take(self.log_gamma_hi, s)
        return hi + (self.take(self.log_gamma_lo, t) - self.take(self.log_gamma_lo, s))
