"""Confidence intervals for FD and KID: a bootstrap over samples (Efron & Tibshirani 1993, ch. 13).

Each replicate resamples the generated features and the reference features with replacement
(each set keeps its size) and recomputes the statistic. Resampling with replacement repeats
samples, which inflates FD and KID (fewer distinct points), so the raw percentiles sit above
the estimate; the interval is therefore the replicates' 2.5-97.5% spread around their median,
placed on the estimate (a "re-centred percentile" interval).

Two records scored against the same reference set (same dataset, N and seed) draw the same
reference indices in replicate b, so their replicates are paired on the reference: the
difference A_b - B_b cancels the reference's own noise, and the models are "distinguishable"
when the re-centred 95% interval of that difference excludes 0 (`difference`).
"""
from __future__ import annotations

import time

import numpy as np

from bench.quality import fd

RESAMPLES = 200  # replicates per score; 2.5/97.5% percentiles from 200 are stable to ~±0.3 of the spread's 5%
LEVEL = 0.95
KID_MAX_SUBSET = 1000  # one replicate = one MMD^2 on min(N, 1000) resampled points per set


def _rngs(seed: int):
    # the reference stream depends on the seed only, so records sharing a reference pair up
    return np.random.default_rng([seed, 17]), np.random.default_rng([seed, 29])


def replicates(kind: str, generated, reference, *, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """`resamples` values of the statistic (`fd` or `kid`) on resampled sets. Below the feature
    dimension (FD) and up to GRAM_MAX points (KID), the Gram matrices are computed once and each
    replicate only gathers from them (the same numbers as recomputing from the resampled features)."""
    x, y = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    rng_ref, rng_gen = _rngs(seed)
    draws = [(rng_gen.integers(0, len(x), len(x)), rng_ref.integers(0, len(y), len(y))) for _ in range(resamples)]
    if max(len(x), len(y)) > GRAM_MAX:  # recompute from the resampled features
        m = min(len(x), len(y), KID_MAX_SUBSET)
        stat = fd.fd_from_features if kind == "fd" else lambda a, b: fd.mmd2_unbiased(a[:m], b[:m])
        return np.array([stat(x[ix], y[iy]) for ix, iy in draws])
    if kind == "fd":
        return np.array([_fd_gram(*g, ix, iy) for g in [_grams(x, y)] for ix, iy in draws])
    m = min(len(x), len(y), KID_MAX_SUBSET)
    d = x.shape[1]
    kxx, kyy, kxy = ((g / d + 1) ** 3 for g in _grams(x, y))
    return np.array([_mmd2_gathered(kxx, kyy, kxy, ix[:m], iy[:m]) for ix, iy in draws])


GRAM_MAX = 4096  # Gram matrices up to 4096^2 float64 (128 MiB each) are kept in memory


def _grams(x, y):
    return x @ x.T, y @ y.T, x @ y.T


def _fd_gram(gxx, gyy, gxy, ix, iy) -> float:
    """fd.fd_from_features(x[ix], y[iy]) from the Gram matrices: with centred rows, ||mu1 - mu2||^2,
    tr S and tr sqrt(S1 S2) = ||A^T B||_* (any N and dim) are all inner products; the nuclear norm
    is the sum of the square roots of the eigenvalues of C C^T on the smaller side."""
    a, b, c = gxx[np.ix_(ix, ix)], gyy[np.ix_(iy, iy)], gxy[np.ix_(ix, iy)]
    n, m = len(ix), len(iy)
    mean_diff = a.mean() + b.mean() - 2.0 * c.mean()
    tr1, tr2 = (np.trace(a) - n * a.mean()) / (n - 1), (np.trace(b) - m * b.mean()) / (m - 1)
    centred = c - c.mean(axis=1, keepdims=True) - c.mean(axis=0, keepdims=True) + c.mean()
    small = centred @ centred.T if n <= m else centred.T @ centred
    eig = np.linalg.eigvalsh((small + small.T) / 2)
    nuclear = np.sqrt(np.clip(eig, 0.0, None)).sum() / np.sqrt((n - 1) * (m - 1))
    return float(max(mean_diff + tr1 + tr2 - 2.0 * nuclear, 0.0))


def _mmd2_gathered(kxx, kyy, kxy, ix, iy) -> float:
    """fd.mmd2_unbiased(x[ix], y[iy]) from the kernel matrices."""
    m = len(ix)
    sxx, syy = kxx[np.ix_(ix, ix)], kyy[np.ix_(iy, iy)]
    off = (sxx.sum() - np.trace(sxx) + syy.sum() - np.trace(syy)) / (m * (m - 1))
    return float(off - 2.0 * kxy[np.ix_(ix, iy)].sum() / (m * m))


def interval(value: float, reps, level: float = LEVEL) -> tuple[float, float]:
    """The replicates' central `level` spread around their median, placed on `value`."""
    reps = np.asarray(reps, np.float64)
    lo, mid, hi = np.quantile(reps, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return float(value - (mid - lo)), float(value + (hi - mid))


def bootstrap(kind: str, value: float, generated, reference, *, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """The record's `ci95` and `bootstrap` entries for one score."""
    started = time.perf_counter()
    reps = replicates(kind, generated, reference, resamples=resamples, seed=seed)
    lo, hi = interval(value, reps)
    return {"ci95": [lo, hi], "bootstrap": {
        "method": "resample generated and reference sets with replacement; 2.5-97.5% spread re-centred on the value",
        "resamples": resamples, "seed": seed, "seconds": round(time.perf_counter() - started, 3),
        "replicates": [float(f"{v:.6g}") for v in reps]}}


def difference(value_a: float, reps_a, value_b: float, reps_b, level: float = LEVEL) -> dict:
    """A - B with its paired-bootstrap interval; `distinguishable` when the interval excludes 0."""
    a, b = np.asarray(reps_a, np.float64), np.asarray(reps_b, np.float64)
    if a.shape != b.shape or a.size < 20:
        raise ValueError(f"paired replicates need equal lengths >= 20, got {a.size} and {b.size}")
    lo, hi = interval(value_a - value_b, a - b, level)
    return {"difference": value_a - value_b, "ci": (lo, hi), "distinguishable": bool(lo > 0 or hi < 0)}
