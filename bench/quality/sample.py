"""Sampling for quality: N samples in batches with the family's own sampler (the backend
adapter's `generate`), quantized to uint8 once and kept as an .npz so metrics can be
recomputed without re-sampling. No per-family code: the adapter and the process decide.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.quality.features import to_uint8


def generate_samples(adapter, built, n: int, batch: int, *, steps: int | None = None, seed: int = 0,
                     context=None) -> tuple[np.ndarray, dict]:
    """(uint8 samples (n, ...), info). `context`: (n, cond_frames, H, W, C) floats in [-1, 1]
    for frame-conditioned video models; the clips returned then start with those frames."""
    steps = steps or built.config.process.sample_steps
    per_step = adapter.make_sample_step(built, 1, seed=seed, compile=False).nfe  # guidance etc.
    out, started = [], time.perf_counter()
    for i, start in enumerate(range(0, n, batch)):
        b = min(batch, n - start)
        ctx = None if context is None else np.asarray(context[start:start + b], np.float32)
        x = adapter.generate(built, b, seed=seed * 100_003 + i, steps=steps, context=ctx)
        x = np.asarray(x[0] if isinstance(x, list) else x)  # a multi-resolution model: its highest side
        if not np.isfinite(x).all():
            raise ValueError(f"non-finite samples in batch {i} (samples {start}..{start + b - 1})")
        out.append(to_uint8(np.concatenate([ctx, x], axis=1) if ctx is not None else x))
    samples = np.concatenate(out)
    info = {"n": n, "batch": batch, "steps": steps, "nfe_per_step": per_step, "nfe": steps * per_step,
            "network_passes": steps * per_step * len(out), "duration_s": time.perf_counter() - started,
            "conditioning_frames_included": context is not None}
    return samples, info


def save_samples(path: Path, samples: np.ndarray, info: dict) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, samples=samples, **{k: np.asarray(v) for k, v in info.items()})
    tmp.replace(path)
    return str(path)


def load_samples(path) -> np.ndarray:
    with np.load(path) as f:
        return f["samples"]
