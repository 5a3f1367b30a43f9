"""Measurements of one case: params, FLOPs, wall-clock per step, memory (docs/measurement.md).

`run_case(case)` runs in the case's own process and returns the record's measurement fields,
only those the case asks for:
    {"params": int, "flops": {...}, "timing": {"sample_step": {...}, "train_step": {...}}, "memory": {...}}
Importing this package imports neither torch nor jax.
"""

from __future__ import annotations

# name -> (record key, function in bench.measure.case), run in this order
MEASUREMENTS = {
    "params": ("params", "measure_params"),
    "flops": ("flops", "measure_flops"),
    "sample_step": ("timing", "measure_sample_step"),
    "train_step": ("timing", "measure_train_step"),
    "memory": ("memory", "measure_memory"),
}


def run_case(case, cpu_peaks: dict | None = None) -> dict:
    """Measure what `case.measure` lists; raises on failure (the worker records the error).
    cpu_peaks: the run's CPU matmul microbenchmark at this case's threads (for CPU MFU)."""
    from bench.measure import case as measure

    unknown = [m for m in case.measure if m not in MEASUREMENTS]
    if unknown:
        raise ValueError(f"unknown measurement(s) {unknown}; allowed: {list(MEASUREMENTS)}")
    ctx = measure.make_context(case)
    ctx.cpu_peaks = cpu_peaks
    out: dict = {}
    for name, (key, fn) in MEASUREMENTS.items():
        if name not in case.measure:
            continue
        value = getattr(measure, fn)(ctx)
        if key == "timing":
            out.setdefault("timing", {})[name] = value
        else:
            out[key] = value
    return out
