"""The phase stochastic bridge of AGM (Chen et al. 2023, "Generative modeling with phase
stochastic bridges", Sec. 3-4), written once for numpy, torch and jax.numpy (array_api_compat).

State m_t = [x_t, v_t]; data at t = 1, prior at t = 0: x_0, v_0 ~ N(0, [[varx, -k sqrt(varx varv)],
[., varv]]) (the official formulas' sign: Sigma_xv(0) = -k sqrt(varx varv)). Conditioned on the data point x_1, the controlled dynamics are linear:

    dx = v dt,   dv = a*(m, t) dt + g_t dW,   a* = g^2 P11 ((x_1 - x) / (1 - t) - v),
    g_t = p (1 - t),   g^2 P11 = 4 / (1 - t),   g^2 P10 = 6 / (1 - t)^2   (paper Sec. 3; AM/dynamics.py),

so m_t | x_1 is gaussian with mean (cx x_1, cv x_1) and covariance Sigma(t) below (closed form of
the moment ODEs; the official AM/dynamics.py TVgMPC holds the same polynomials with tt = 1).
Every function here takes t as an array (any shape) and returns arrays of its namespace.
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace


def g(t, p: float):
    """Diffusion coefficient g_t = p (1 - t)."""
    return p * (1.0 - t)


def g2p11(t):
    """g_t^2 P11(t) = 4 / (1 - t): the feedback gain of the optimal acceleration."""
    return 4.0 / (1.0 - t)


def mean_coefficients(t):
    """(cx, cv): E[x_t | x_1] = cx x_1, E[v_t | x_1] = cv x_1 for the zero-mean prior."""
    return t**2 * (t**2 - 4.0 * t + 6.0) / 3.0, 4.0 * t * (t**2 - 3.0 * t + 3.0) / 3.0


def covariance(t, p: float, k: float, varx: float, varv: float):
    """(Sigma_xx, Sigma_xv, Sigma_vv) of m_t given x_1 (official TVgMPC.sigmaxx/sigmavx/sigmavv, tt = 1).

    The prior's covariance enters through varx, varv and kk = k sqrt(varx varv); the diffusion
    through p^2 and the (t - 1)^3 log(1 - t) term (the integral of g^2 against the transition).
    """
    xp = array_namespace(t)
    m, n, kk, p2 = varx, varv, k * math.sqrt(varx * varv), p * p
    log1mt = xp.log(1.0 - t)
    c3 = (t - 1.0) ** 3 * log1mt
    q = t**2 - 3.0 * t + 3.0
    s_xx = (t - 1.0) ** 2 * (
        30.0 * m * (t**3 - 3.0 * t**2 + 3.0 * t + 3.0) ** 2 - 60.0 * p2 * c3
        - t * (60.0 * kk * (t**5 - 6.0 * t**4 + 15.0 * t**3 - 15.0 * t**2 + 9.0) - 30.0 * n * t * q**2
               + p2 * (10.0 * t**5 - 60.0 * t**4 + 150.0 * t**3 - 200.0 * t**2 + 150.0 * t - 60.0))) / 270.0
    s_xv = (1.0 - t) / 270.0 * (
        30.0 * kk * (8.0 * t**6 - 48.0 * t**5 + 120.0 * t**4 - 135.0 * t**3 + 45.0 * t**2 + 27.0 * t - 9.0)
        + 150.0 * p2 * c3
        + t * (-120.0 * m * (t**5 - 6.0 * t**4 + 15.0 * t**3 - 15.0 * t**2 + 9.0)
               - 30.0 * n * (4.0 * t**5 - 24.0 * t**4 + 60.0 * t**3 - 75.0 * t**2 + 45.0 * t - 9.0)
               + p2 * (40.0 * t**5 - 240.0 * t**4 + 600.0 * t**3 - 770.0 * t**2 + 510.0 * t - 150.0)))
    s_vv = (n * (-4.0 * t**3 + 12.0 * t**2 - 12.0 * t + 3.0) ** 2 / 9.0 - 8.0 * p2 * c3 / 9.0
            + t * (-120.0 * kk * (4.0 * t**5 - 24.0 * t**4 + 60.0 * t**3 - 75.0 * t**2 + 45.0 * t - 9.0)
                   + 240.0 * m * t * q**2
                   + p2 * (-80.0 * t**5 + 480.0 * t**4 - 1200.0 * t**3 + 1525.0 * t**2 - 975.0 * t + 255.0))
            / 135.0)
    return s_xx, s_xv, s_vv


def cholesky(t, p: float, k: float, varx: float, varv: float):
    """(L_xx, L_xv, L_vv, ell): Sigma = L L^T with L = [[L_xx, 0], [L_xv, L_vv]], and
    ell = -sqrt(Sigma_xx / det Sigma) = -1 / L_vv, so that grad_v log p(m_t | x_1) = ell eps_v."""
    xp = array_namespace(t)
    s_xx, s_xv, _ = covariance(t, p, k, varx, varv)
    l_xx = xp.sqrt(s_xx)
    l_xv = s_xv / l_xx
    l_vv = xp.sqrt(determinant(t, p, k, varx, varv) / s_xx)  # not sqrt(s_vv - l_xv^2): it cancels near t = 1
    return l_xx, l_xv, l_vv, -1.0 / l_vv


def determinant(t, p: float, k: float, varx: float, varv: float):
    """det Sigma(t) = (1-t)^5 D(1-t) / 81, factored (sympy) so that float32 keeps its precision as
    t -> 1, where Sigma_xx Sigma_vv and Sigma_xv^2 agree to ~7 digits and their difference is noise."""
    xp = array_namespace(t)
    m, n, kk, p2 = varx, varv, k * math.sqrt(varx * varv), p * p
    tau = 1.0 - t
    lg, t3, t6 = xp.log(tau), tau**3, tau**6
    d = -(9.0 * lg**2 * p2**2 * t3 + lg * p2 * t3 * (90.0 * kk - 72.0 * m - 18.0 * n)
          + t3 * (81.0 * kk**2 - 18.0 * kk * p2 - 81.0 * m * n + 45.0 * m * p2 + 2.0 * p2**2)
          + t6 * p2 * (-6.0 * kk + 3.0 * m + 3.0 * n - p2)
          + p2 * (24.0 * kk - 48.0 * m - 3.0 * n - p2))
    return tau**5 * d / 81.0


def normalizer(t, p: float, k: float, varx: float, varv: float):
    """The force label's scale (official TVgMPC.normalizer, probability-flow ODE):
    sqrt((g2P11 (L_xx/(1-t) + L_xv))^2 + (g2P11 L_vv - g^2 ell / 2)^2) / (1 - t).
    Training divides the label by it and sampling multiplies the network's output by it; any
    positive function would do as long as both use the same one."""
    xp = array_namespace(t)
    l_xx, l_xv, l_vv, ell = cholesky(t, p, k, varx, varv)
    a, tau = g2p11(t), 1.0 - t
    return xp.sqrt((a * (l_xx / tau + l_xv)) ** 2 + (a * l_vv - 0.5 * g(t, p) ** 2 * ell) ** 2) / tau


def hop_coefficients(t, p: float, k: float, varx: float, varv: float):
    """(aa, bb, den_x1): the unnormalized force label is affine in x_1 at fixed m_t,
    F = 4 (1-t)^2 x_1 - g2P11 (aa (x - cx x_1) + bb (v - cv x_1)), so
    x_1 = (F + g2P11 (aa x + bb v)) / (4 (1-t)^2 + g2P11 (aa cx + bb cv))   (official get_est_x1)."""
    l_xx, l_xv, l_vv, ell = cholesky(t, p, k, varx, varv)
    a, tau = g2p11(t), 1.0 - t
    big_a = l_xx / tau + l_xv
    bb = (l_vv + 0.5 * g(t, p) ** 2 * ell / a) / l_vv
    aa = (big_a - bb * l_xv) / l_xx
    cx, cv = mean_coefficients(t)
    return aa, bb, 4.0 * tau**2 + a * (aa * cx + bb * cv)
