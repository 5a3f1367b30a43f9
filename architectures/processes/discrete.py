"""Discrete time as in DDPM, iDDPM and ADM: T steps k = 0..T-1, the network sees the integer k,
and sampling with fewer steps walks a respaced subset of the original indices.

The official code (openai/guided-diffusion gaussian_diffusion.py and respace.py) precomputes its
coefficients in float64 numpy. So does `Tables`, once per process: gamma (alphas_cumprod) and
every coefficient that a float32 computation from gamma would get wrong - sqrt(1 - gamma) near
gamma = 1 (k = 0: 1 - gamma is ~1e-5, of which float32 gamma keeps two digits), 1 / sqrt(gamma)
and sqrt(1 / gamma - 1) (ADM's sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod). The
process gathers them in the data's namespace and dtype (cast per gather) and then only multiplies
and divides them, which keeps float32's relative accuracy; it never subtracts two of them. Index
-1 stands for "no noise" (gamma = 1), the state after the last sampling step. log gamma is kept
as a float32 pair (hi + lo) so that the difference of two steps - a small beta, or alpha =
gamma_k / gamma_k' of any respaced step - keeps float64 accuracy in float32 arithmetic.
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


# The columns of Tables.rows: gamma and ADM's coefficient tables (sqrt_alphas_cumprod,
# sqrt_one_minus_alphas_cumprod, sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod), 1 - gamma,
# and log gamma as a (hi, lo) pair.
COLUMNS = ("gamma", "sqrt_gamma", "sqrt_one_minus", "sqrt_recip", "sqrt_recipm1", "one_minus", "log_hi", "log_lo")


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
        self.sqrt_gamma = np.sqrt(self.gamma)
        self.sqrt_one_minus_gamma = np.sqrt(self.one_minus_gamma)
        self.sqrt_recip_gamma = 1.0 / self.sqrt_gamma
        self.sqrt_recipm1_gamma = np.sqrt(self.one_minus_gamma / self.gamma)
        self.stacked = np.stack([self.gamma, self.sqrt_gamma, self.sqrt_one_minus_gamma, self.sqrt_recip_gamma,
                                 self.sqrt_recipm1_gamma, self.one_minus_gamma, self.log_gamma_hi,
                                 self.log_gamma_lo], axis=1)  # (T + 1, len(COLUMNS)): one copy, one gather

    def take(self, table: np.ndarray, t):
        """table[t + 1] for integer-valued t of any float dtype (t = -1: noise free)."""
        xp = array_namespace(t)
        index = xp.astype(t, xp.int32) + 1
        return xp.take(_const(table, t), index)

    def rows(self, t) -> dict:
        """Every column of COLUMNS at t, each (B,) in t's namespace and dtype."""
        xp = array_namespace(t)
        rows = xp.take(_const(self.stacked, t), xp.astype(t, xp.int32) + 1, axis=0)
        return {name: rows[:, j] for j, name in enumerate(COLUMNS)}

    @staticmethod
    def ratio(rows_t: dict, rows_s: dict):
        """log(gamma_t / gamma_s) from two rows' hi/lo pairs: exact for neighbouring steps."""
        return (rows_t["log_hi"] - rows_s["log_hi"]) + (rows_t["log_lo"] - rows_s["log_lo"])
