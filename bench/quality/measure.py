"""The `quality` measurement of a case: sample N with the family's sampler from whatever weights
the case's model holds (initial, or trained by an earlier measurement), keep them as uint8 .npz
next to the record, and score them against a real reference set with N, feature space and floor.

The reference is 2N real examples (N for the score, N more for the floor). A frame-conditioned
video model gets its conditioning frames from N further real clips (disjoint from both), and its
scored clips include those frames, as the real clips do.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.quality import metrics
from bench.quality.features import to_uint8
from bench.quality.sample import generate_samples, save_samples
from bench.quality.settings import QualitySettings

SAMPLES_FILE = "samples.npz"


def reference_data(q: QualitySettings, config, seed: int, count: int, process=None) -> np.ndarray:
    """`count` real examples shaped like the model's full clip (conditioning + generated
    frames) or image with the process's data channels (the phase space's network sees twice them;
    a multi-resolution model: its highest side), float32 in [-1, 1]."""
    from bench.backends.framework_free import x_shape as x_shape_of
    from bench.data import load_dataset

    shapes = config.input_shapes(1)
    x_shape = x_shape_of(shapes) if process is None else process.data_shape(x_shape_of(shapes))
    x_shape = x_shape[0] if isinstance(x_shape, list) else x_shape
    frames = None
    if len(x_shape) == 5:
        frames = x_shape[1] + (shapes["context"][0][1] if "context" in shapes else 0)
    h, w, c = x_shape[-3:]
    if h != w:
        raise ValueError(f"quality reference: non-square samples {h}x{w} are not supported")
    ds = load_dataset(q.dataset, root=q.root, resolution=h, channels=c, frames=frames, seed=seed, limit=count)
    if len(ds.x) < count:
        raise ValueError(f"quality.dataset {q.dataset!r} has {len(ds.x)} examples; N={q.n} needs {count} "
                         "(N reference + N floor" + (" + N conditioning clips)" if count > 2 * q.n else ")"))
    return np.asarray(ds.x[:count], np.float32)


def sampling_gflop(entry, config, nfe: int) -> dict:
    """What sampling one example cost: the analytic forward FLOPs of one image (2 x MACs, the
    headline convention) x the NFE the sampler really spent (not the preset's steps)."""
    from bench.measure.flops import analytic

    per_image = 2 * analytic(entry, config, 1)["macs"] / 1e9
    return {"gflop_per_image": per_image, "gflop_per_sample": per_image * nfe}


def _sample(ctx, cache: dict):
    """(settings, uint8 samples, sampling info, uint8 real set of 2N, conditioning frames) for the
    weights ctx.built() holds now; the real data is loaded once per case (kept in `cache`)."""
    q = ctx.case.quality or QualitySettings()
    shapes = ctx.config.input_shapes(1)
    cond = shapes["context"][0][1] if "context" in shapes and "context_mask" not in shapes else 0  # frames, not tokens
    if "real" not in cache:
        cache["real"] = reference_data(q, ctx.config, ctx.case.seed, (3 if cond else 2) * q.n, ctx.built().process)
    real = cache["real"]
    context = real[2 * q.n:, :cond] if cond else None
    samples, info = generate_samples(ctx.adapter, ctx.built(), q.n, q.batch, steps=q.steps, seed=ctx.case.seed,
                                     context=context)
    info.update(sampling_gflop(ctx.entry, ctx.config, info["nfe"]))
    return q, samples, info, to_uint8(real[:2 * q.n]), cond


def score_now(ctx, cache: dict) -> dict:
    """One learning-curve point: sample and score the weights ctx.built() holds now (nothing kept
    on disk; the reference features are extracted once per case and reused from `cache`)."""
    q, samples, info, real, _ = _sample(ctx, cache)
    started = time.perf_counter()
    rows = metrics.score(samples, real, q.metrics, seed=ctx.case.seed, reference_cache=cache.setdefault("features", {}))
    return {"metrics": rows, "sampling_s": info["duration_s"], "scoring_s": time.perf_counter() - started}


def measure_quality(ctx) -> dict:
    cache = ctx.quality_cache
    q, samples, info, real, cond = _sample(ctx, cache)
    # the `train` measurement (when the case has one) runs first and trains ctx.built() in place
    weights = "trained by this case's train measurement" if "train" in ctx.case.measure else ctx.weights
    out = {"settings": q.to_dict(), "weights": weights, "sampling": info}
    if ctx.artifacts is not None:
        path = Path(ctx.artifacts) / SAMPLES_FILE
        save_samples(path, samples, info)
        out["samples_file"] = str(Path(path.parent.parent.name) / path.parent.name / path.name)
    started = time.perf_counter()
    out["metrics"] = metrics.score(samples, real, q.metrics, seed=ctx.case.seed,
                                   reference_cache=cache.setdefault("features", {}))
    out["scoring_s"] = time.perf_counter() - started
    out["reference"] = {"dataset": q.dataset, "n": q.n, "floor_n": q.n, "conditioning_clips": q.n if cond else 0}
    return out
