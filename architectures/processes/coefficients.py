"""The coefficients of the gaussian process at one noise level and over one step, for any array
namespace. Discrete time gathers them from float64 tables (discrete.py); continuous time computes
them from gamma in the data's dtype."""

from __future__ import annotations

from typing import Any, NamedTuple

from array_api_compat import array_namespace


class Level(NamedTuple):
    """One noise level's coefficients, each (B,): ADM's alphas_cumprod, sqrt_alphas_cumprod,
    sqrt_one_minus_alphas_cumprod, sqrt_recip_alphas_cumprod and sqrt_recipm1_alphas_cumprod.
    Discrete time gathers them from float64 tables (discrete.py); continuous time computes them."""

    gamma: Any
    sqrt_gamma: Any
    sqrt_one_minus: Any  # sqrt(1 - gamma)
    sqrt_recip: Any  # 1 / sqrt(gamma)
    sqrt_recipm1: Any  # sqrt(1 / gamma - 1)


def as_level(gamma) -> Level:
    """A Level as is, or one computed from gamma in its own dtype (continuous time)."""
    if isinstance(gamma, Level):
        return gamma
    xp = array_namespace(gamma)
    sg, s1g = xp.sqrt(gamma), xp.sqrt(1.0 - gamma)
    return Level(gamma, sg, s1g, 1.0 / sg, s1g / sg)


class StepTerms(NamedTuple):
    """The step t -> t' (gamma -> gamma'), each (B,)."""

    alpha: Any  # gamma / gamma'
    beta: Any  # 1 - alpha
    one_minus: Any  # 1 - gamma
    one_minus_next: Any  # 1 - gamma'
    sqrt_gamma_next: Any  # sqrt(gamma')
