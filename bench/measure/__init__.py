"""Measurements of one case: params, FLOPs, wall-clock per step, memory (docs/measurement.md).

`run_case(case)` runs in the case's own process and returns the record's measurement fields,
only those the case asks for:
    {"params": int, "flops": {...}, "timing": {"sample_step": {...}, "train_step": {...}}, "memory": {...}}
Importing this package imports neither torch nor jax.
"""

from __future__ import annotations

# name -> (record key, function in bench.measure.case_measurements), run in this order
MEASUREMENTS = {
    "params": ("params", "measure_params"),
    "flops": ("flops", "measure_flops"),
    "train": ("train", "measure_train"),  # budgeted training; later measurements use its weights
    "sample_step": ("timing", "measure_sample_step"),
    "train_step": ("timing", "measure_train_step"),
    "memory": ("memory", "measure_memory"),
    "quality": ("quality", "measure_quality"),
}


def run_case(case, cpu_peak_gflop_per_s: dict | None = None, run_dir: str | None = None, artifacts=None, only=None) -> dict:
    """Measure what `case.measure` lists, or the part of it in `only` (a later round times the
    timed steps alone, bench/rounds.py); raises on failure (the worker records the error).
    cpu_peak_gflop_per_s: the run's CPU matmul microbenchmark at this case's threads (for CPU MFU).
    run_dir: the run's directory, where `train` writes its checkpoint.
    artifacts: the case's directory for files it keeps (samples), under the run directory."""
    from bench.measure import case_measurements as measure

    wanted = [m for m in case.measure if only is None or m in only]
    unknown = [m for m in wanted if m not in MEASUREMENTS]
    if unknown:
        raise ValueError(f"unknown measurement(s) {unknown}; allowed: {list(MEASUREMENTS)}")
    ctx = measure.make_context(case)
    ctx.cpu_peak_gflop_per_s = cpu_peak_gflop_per_s
    ctx.run_dir = run_dir
    ctx.artifacts = artifacts
    out: dict = {}
    for name, (key, fn) in MEASUREMENTS.items():
        if name not in wanted:
            continue
        value = getattr(measure, fn)(ctx)
        if key == "timing":
            out.setdefault("timing", {})[name] = value
        else:
            out[key] = value
    return out
