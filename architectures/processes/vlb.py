"""The variational-bound term of iDDPM's hybrid loss and its learned variance, for any namespace.

Nichol & Dhariwal 2021 ("Improved DDPM"): the network also outputs v, and the reverse variance is
exp(v' log beta_t + (1 - v') log beta~_t) with v' = (v + 1) / 2 (Eq. 15, guided-diffusion's
LEARNED_RANGE). L_t is KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0 and the
discretized gaussian decoder NLL at t = 0 (Ho et al. 2020, Eq. 13), both in bits per dimension
(guided-diffusion losses.py and GaussianDiffusion._vb_terms_bpd).
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

BIN = 1.0 / 255.0  # half of one of the 256 uint8 bins in [-1, 1]


def mean_flat(a):
    """Mean over every axis but the batch axis: (B, ...) -> (B,)."""
    xp = array_namespace(a)
    return xp.mean(a, axis=tuple(range(1, a.ndim)))


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    xp = array_namespace(mean1)
    return 0.5 * (-1.0 + logvar2 - logvar1 + xp.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * xp.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """The tanh approximation of Phi the official code uses (Page 1977)."""
    xp = array_namespace(x)
    return 0.5 * (1.0 + xp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log P(x) of uint8 data in [-1, 1] under N(means, e^(2 log_scales)) integrated over x's bin,
    the outer bins extended to -inf / +inf (Ho et al. 2020, Eq. 13), elementwise, in nats."""
    xp = array_namespace(x)
    centered = x - means
    inv_std = xp.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + BIN))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - BIN))
    log_cdf_plus = xp.log(xp.clip(cdf_plus, 1e-12, None))
    log_one_minus_cdf_min = xp.log(xp.clip(1.0 - cdf_min, 1e-12, None))
    log_delta = xp.log(xp.clip(cdf_plus - cdf_min, 1e-12, None))
    return xp.where(x < -0.999, log_cdf_plus, xp.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def learned_log_variance(v, log_beta, log_posterior_variance):
    """Eq. 15: interpolate log beta (max) and log beta~ (min) with v in [-1, 1] mapped to [0, 1]."""
    frac = (v + 1.0) / 2.0
    return frac * log_beta + (1.0 - frac) * log_posterior_variance
