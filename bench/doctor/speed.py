"""Measured matmul throughput per precision against the peak table, and the harness's timer against a
bare loop on the same training step (CUDA events on a GPU)."""

from __future__ import annotations

import statistics
import time

from bench.doctor.result import Result, device_name, precisions

MATMUL_N = {"cuda": 8192, "cpu": 1024}
TF32_SPEEDUP_MIN = 1.5  # TF32 on tensor cores vs fp32 on CUDA cores: ~7x on an H100; below this, TF32 is off
ABOVE_PEAK_MAX = 1.05  # a measured rate above the datasheet peak means the table row is wrong


def _clock(device):
    """A timer of one call: CUDA events on a GPU, the wall clock elsewhere."""
    import torch

    if device.type != "cuda":
        def wall(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return wall

    def events(fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    return events


def matmul_tflops(device, precision: str, reps: int = 20) -> float:
    """Best of `reps` n x n matmuls under the policy's step flags (bf16: bfloat16 operands)."""
    import torch

    from bench.backends.torch_adapter.precision import Policy

    n = MATMUL_N.get(device.type, 1024)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    timer = _clock(device)
    with Policy.make(precision, "auto", "contiguous", device).step():
        for _ in range(3):
            torch.mm(a, b)
        best = min(timer(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n**3 / best / 1e12


def check_matmul(device) -> Result:
    from bench.measure.peaks import device_peak

    name, platform = device_name(device), "cuda" if device.type == "cuda" else "cpu"
    rows, ok, parts = {}, True, []
    for precision in precisions(device):
        tflops = matmul_tflops(device, precision)
        peak = device_peak(name, platform, precision) if platform == "cuda" else {"tflop_per_s": None, "row": None}
        ratio = tflops / peak["tflop_per_s"] if peak["tflop_per_s"] else None
        rows[precision] = {"tflop_per_s": tflops, "peak_tflop_per_s": peak["tflop_per_s"], "peak_row": peak.get("row"),
                           "fraction_of_peak": ratio}
        ok &= ratio is None or ratio <= ABOVE_PEAK_MAX
        parts.append(f"{precision} {tflops:.4g} TFLOP/s" + ("" if ratio is None else f" ({ratio:.0%} of {peak['row']})"))
    if "tf32" in rows:
        speedup = rows["tf32"]["tflop_per_s"] / rows["fp32"]["tflop_per_s"]
        rows["tf32_over_fp32"] = speedup
        ok &= speedup >= TF32_SPEEDUP_MIN
    unknown = platform == "cuda" and all(r["peak_tflop_per_s"] is None for r in rows.values() if isinstance(r, dict))
    summary = ", ".join(parts) + (f"; {name!r} is not in the peak table" if unknown else "")
    return Result("matmul speed vs peak", None if unknown or platform != "cuda" else ok, summary, rows)


def _median_pair(fn, device, rounds: int, reps: int):
    """Harness (bench.measure.timing.time_step with its device timer) and bare loop, interleaved."""
    from bench.backends import torch_adapter as tb
    from bench.measure.timing import TimingPolicy, time_step

    policy = TimingPolicy(warmup=3, min_reps=reps, max_reps=reps, target_rel_iqr=1e-9, time_cap_s=1e9)
    timer, harness, harness_dev, bare = _clock(device), [], [], []
    for _ in range(rounds):
        events: list[float] = []
        wall, _, _ = time_step(fn, tb.sync, policy, device_timer=tb.device_timer(device), device_samples=events)
        harness += wall
        harness_dev += events
        for _ in range(3):
            tb.sync(fn())
        bare += [timer(fn) for _ in range(reps)]
    return statistics.median(harness), statistics.median(harness_dev) if harness_dev else None, statistics.median(bare)


MODEL = {"cuda": ("dit-b-2", 32, "bf16"), "cpu": ("dit-tiny", 2, "fp32")}  # (preset, batch, precision)


def check_timer(device, model: tuple | None = None, rounds: int = 2, reps: int = 15) -> Result:
    """The harness's wall clock and device time against a bare loop on the same torch training step."""
    from architectures import registry
    from bench.backends import torch_adapter as tb

    on_gpu = device.type == "cuda"
    preset, batch, precision = model or MODEL["cuda" if on_gpu else "cpu"]
    entry = registry.find_preset(preset)
    built = tb.build(entry, entry.preset(preset).config, seed=0, device=device, precision=precision)
    step = tb.make_train_step(built, batch, seed=0)
    harness, harness_dev, bare = _median_pair(step.fn, device, rounds=rounds, reps=reps)
    ratio = harness / bare
    detail = {"model": f"{preset} b{batch} {precision} training step", "harness_wall_ms": harness * 1e3,
              "harness_device_ms": None if harness_dev is None else harness_dev * 1e3,
              "bare_ms": bare * 1e3, "bare_method": "CUDA events" if on_gpu else "wall clock",
              "harness_over_bare": ratio}
    ok = abs(ratio - 1) <= 0.05 if on_gpu else None  # a shared CPU is too noisy to judge 5%
    summary = f"{detail['model']}: harness {harness * 1e3:.4g} ms vs bare {bare * 1e3:.4g} ms ({ratio:.3f}x)"
    return Result("harness timer vs bare loop", ok, summary, detail)
