"""Scores over uint8 samples against a real reference set, each with N, its feature space and
its floor: the same statistic between two disjoint real sets of the same N (finite-N FD is biased
upward, FD_N ~ FD_inf + k/N, Chong & Forsyth 2020, so a score means little without it).

    fid         FD, clean-fid Inception (weights from DIFFBENCH_INCEPTION)     images
    kid-inception  KID in the same space                                          images
    fvd         FD, StyleGAN-V I3D, 16-frame clips (weights from DIFFBENCH_I3D)  videos
    fd-effnet   FD, EfficientNet-Lite0 features: an offline PROXY, never "FID"  images / videos
    kid         KID in the fd-effnet space (unbiased; use it at small N)        images / videos
"""
from __future__ import annotations

import time

import numpy as np

from bench.quality import fd, features, uncertainty
from bench.quality.settings import METRICS, PROXIES
from bench.quality.weights import MetricError

EXTRACTORS = {"inception": features.inception, "i3d": features.i3d,
              "effnet": features.effnet_images, "effnet-video": features.effnet_video}


def check_metric(name: str, video: bool) -> str:
    """The feature-space key for metric `name` on images or videos, or MetricError."""
    if name not in METRICS:
        raise MetricError(f"unknown metric {name!r}; allowed: {', '.join(METRICS)}")
    space = METRICS[name][1 if video else 0]
    if space is None:
        raise MetricError(f"metric {name!r} is for {'images' if video else 'videos'}, not {'videos' if video else 'images'}")
    return space


def _statistic(kind: str, a: np.ndarray, b: np.ndarray, seed: int) -> dict:
    """The score of `a` against the reference `b`, with its bootstrap 95% CI (bench.quality.uncertainty)."""
    if kind == "fd":
        out = {"value": fd.fd_from_features(a, b)}
    else:
        k = fd.kid(a, b, seed=seed)
        out = {"value": k["mean"], "std": k["std"], "subsets": k["subsets"], "subset_size": k["subset_size"]}
    return {**out, **uncertainty.bootstrap(kind, out["value"], a, b, seed=seed)}


def score(samples: np.ndarray, reference: np.ndarray, metrics, *, seed: int = 0, extractors=None,
          reference_cache: dict | None = None) -> list[dict]:
    """One dict per metric. `reference` needs >= 2N real samples: the first N are the
    reference, the next N give the floor. `reference_cache` (a dict, per reference set) keeps
    the extractors and the reference features between calls (a learning curve scores many times)."""
    samples, reference = np.asarray(samples), np.asarray(reference)
    n, video = len(samples), samples.ndim == 5
    if len(reference) < 2 * n:
        raise MetricError(f"reference has {len(reference)} samples; scoring N={n} with its floor needs {2 * n}")
    spaces = {m: check_metric(m, video) for m in metrics}
    extractors = extractors or {}
    cache = {} if reference_cache is None else reference_cache
    feats = {}
    for space in dict.fromkeys(spaces.values()):
        t0 = time.perf_counter()
        if space not in cache:
            ex = extractors.get(space) or EXTRACTORS[space]()
            cache[space] = (ex, ex(reference[:n]), ex(reference[n:2 * n]))
        ex, fa, fb = cache[space]
        feats[space] = (ex.space, ex(samples), fa, fb, time.perf_counter() - t0)
    out = []
    for m, space in spaces.items():
        name, fs, fa, fb, seconds = feats[space]
        kind = METRICS[m][2]
        row = {"metric": m, **_statistic(kind, fs, fa, seed), "n": n, "n_reference": n,
               "feature_space": name, "proxy": m in PROXIES, "feature_s": round(seconds, 3)}
        floor = _statistic(kind, fb, fa, seed)
        row["floor"], row["floor_ci95"] = floor["value"], floor["ci95"]
        if "std" in floor:
            row["floor_std"] = floor["std"]
        out.append(row)
    return out
