"""Summary statistics for timing samples: median, IQR, percentile-bootstrap CIs.

Noise on shared machines is heavy-tailed and mostly between processes (docs/measurement.md), so
the location is the median, the spread the IQR, and uncertainty a bootstrap CI of the median
(Efron & Tibshirani 1993, ch. 13, percentile interval).
"""

from __future__ import annotations

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def iqr(samples) -> float:
    q25, q75 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float(q75 - q25)


def rel_iqr(samples) -> float:
    """IQR / median: the adaptive stop rule's spread measure (inf when the median is 0)."""
    med = float(np.median(samples))
    return iqr(samples) / med if med > 0 else float("inf")


def _percentile_ci(stats: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_median_ci(samples, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the median."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    return _percentile_ci(np.median(x[idx], axis=1), level)


def bootstrap_ratio_ci(a, b, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(a) / median(b), resampling a and b independently."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(n_boot, b.size))], axis=1)
    return _percentile_ci(ma / mb, level)


def summarize_ms(samples_s, batch: int) -> dict:
    """Seconds per step -> the record's timing statistics (ms) and throughput (image-steps/s:
    batch / step time; one image through one sampling or training step)."""
    ms = np.asarray(samples_s, dtype=float) * 1e3
    med = float(np.median(ms))
    lo, hi = bootstrap_median_ci(ms)
    return {
        "median_ms": med,
        "iqr_ms": iqr(ms),
        "rel_iqr": rel_iqr(ms),
        "ci95_ms": [lo, hi],
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "samples_ms": ms.tolist(),
        "image_steps_per_s": batch / (med / 1e3) if med > 0 else None,
        "image_steps_per_s_ci95": [batch / (hi / 1e3), batch / (lo / 1e3)] if lo > 0 else None,
    }
