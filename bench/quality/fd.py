"""Fréchet distance and KID on feature arrays, in float64.

FD (Heusel et al. 2017, Eq. 6; Dowson & Landau 1982):
    ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)
S1 S2 has the same eigenvalues as the symmetric PSD L^T S1 L with S2 = L L^T (or R S2 R with
R = S1^(1/2) when S2 is singular: AB and BA share their spectrum), so tr sqrt(S1 S2) is the sum
of the square roots of its (clipped >= 0) eigenvalues: symmetric eigensolvers, no general sqrtm.
With features in hand and fewer samples than dimensions, S1 = A A^T and S2 = B B^T with
A = X1c^T / sqrt(n1 - 1), and tr sqrt(S1 S2) is exactly the nuclear norm of A^T B (n1 x n2).

KID (Bińkowski et al. 2018, Eq. 3): the unbiased MMD^2 with the kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets as clean-fid and the paper do.
"""
from __future__ import annotations

import numpy as np


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2, float64. With S2 = L L^T (Cholesky), S1 S2 is
    similar to L^T S1 L, so one eigvalsh (values only) does it; a singular S2 falls back to
    R = S1^(1/2) by eigh and the eigenvalues of R S2 R."""
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    try:
        low = np.linalg.cholesky(s2)
        m = low.T @ s1 @ low
    except np.linalg.LinAlgError:
        r = _psd_sqrt(s1)
        m = r @ s2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FD between N(mu1, sigma1) and N(mu2, sigma2), float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof=1, as np.cov and clean-fid) in float64."""
    x = np.asarray(features, np.float64)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _centered_factor(features) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float64)
    mu = x.mean(axis=0)
    return mu, (x - mu) / np.sqrt(x.shape[0] - 1)


def fd_from_features(f1, f2) -> float:
    """FD between two feature sets (rows = samples); exact low-rank path when N < dim."""
    f1, f2 = np.asarray(f1), np.asarray(f2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be (N, dim) with equal dim, got {f1.shape} and {f2.shape}")
    if min(len(f1), len(f2)) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(f1)} and {len(f2)}")
    if min(len(f1), len(f2)) >= f1.shape[1]:
        return frechet_distance(*statistics(f1), *statistics(f2))
    mu1, a = _centered_factor(f1)  # S1 = a^T a
    mu2, b = _centered_factor(f2)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    value = diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * nuclear
    return float(max(value, 0.0))


def kid(f1, f2, *, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> dict:
    """KID: mean and std over subsets of the unbiased polynomial-kernel MMD^2."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be (N, dim) with equal dim, got {f1.shape} and {f2.shape}")
    m = min(len(f1), len(f2), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    values = np.array([
        mmd2_unbiased(f1[rng.choice(len(f1), m, replace=False)], f2[rng.choice(len(f2), m, replace=False)])
        for _ in range(num_subsets)])
    return {"mean": float(values.mean()), "std": float(values.std()), "subsets": num_subsets, "subset_size": m}


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 on two equal-size sets."""
    m, d = x.shape
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2.0 * kxy.sum() / (m * m))
