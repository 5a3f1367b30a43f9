"""One case's measurements, in the case's own process (called by bench.worker via run_case).

Threads are pinned first (before torch or jax is imported, when this process has not imported
them yet), then each measurement the case asks for runs in MEASUREMENTS order. A failure raises
(the worker records it); outputs are checked for NaN/inf once, outside the timed region.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from bench.measure.timing import TimingPolicy, time_step, timing_record


@dataclass
class Context:
    case: Any
    entry: Any
    config: Any
    adapter: Any = None
    device: Any = None
    env: dict = field(default_factory=dict)  # threads and device, recorded with every timing
    device_peak_bytes: list = field(default_factory=list)  # device peak bytes of each timed step (None on CPU)
    device_peak_covers: list = field(default_factory=list)  # what each of those covers (adapter.peak_memory_span)
    flops: dict | None = None  # the flops record, when measured (before the timed steps)
    cpu_peak_gflop_per_s: dict | None = None  # CPU matmul peak at these threads: {"fp32": {"gflop_per_s": ...}, ...}
    run_dir: str | None = None  # where `train` writes its checkpoint (None: not written)
    artifacts: Any = None  # directory for files the case keeps (samples), or None
    weights: str = "initial"  # what ctx.built() holds: "initial" (seeded init) or where trained weights came from
    quality_cache: dict = field(default_factory=dict)  # real data and reference features, shared by quality scorings
    _built: Any = None

    def built(self):
        """The real model on the case's device, built once."""
        if self._built is None:
            c = self.case
            own = ({"cudnn_benchmark": c.cudnn_benchmark, "fused_adamw": c.fused_adamw} if c.backend == "torch"
                   else {"donate": c.donate})  # backend-specific settings (docs/precision.md)
            self._built = self.adapter.build(self.entry, self.config, seed=c.seed, device=self.device,
                                             precision=c.precision, attention=c.attention,
                                             memory_format=c.memory_format, **own)
        return self._built


_PINNED: dict = {}  # what pin_threads did in this process (cpus, claim), for the record


def pin_threads(case) -> dict:
    """Pin intra-op threads and CPUs before the framework starts (the worker may already have)."""
    from bench.backends import framework_free
    from bench.backends.threads import resolve_threads

    threads = resolve_threads(case.threads, case.cpus)
    if "torch" not in sys.modules and "jax" not in sys.modules and not _PINNED:
        pinned = framework_free.pin_threads(threads, case.cpus)
        _PINNED.update(cpus=pinned["cpus"], cpu_claim=pinned["cpu_claim"])
    return {"threads": threads, **_PINNED}


def make_context(case) -> Context:
    from architectures import registry
    from bench import backends, suite_file

    pinned = pin_threads(case)
    ctx = Context(case, registry.get(case.arch), suite_file.resolve_config(case))
    ctx.adapter = backends.get(case.backend)
    ctx.device = ctx.adapter.resolve_device(case.device)  # DeviceError says what was found
    ctx.env = {**pinned, **ctx.adapter.set_threads(pinned["threads"]),
               "device": ctx.adapter.device_description(ctx.device)}
    return ctx


def policy_for(case) -> TimingPolicy:
    """Default policy, its time cap shrunk so both timed steps fit well inside the case timeout."""
    default = TimingPolicy()
    return TimingPolicy(time_cap_s=min(default.time_cap_s, case.timeout_s / 8))


def measure_params(ctx: Context) -> int:
    built = ctx.adapter.build(ctx.entry, ctx.config, seed=ctx.case.seed, abstract=True)
    return int(ctx.adapter.param_count(built))


def measure_flops(ctx: Context) -> dict:
    from bench.measure.flops import COUNTERS, flops_record

    c = ctx.case
    ctx.flops = flops_record(ctx.entry, ctx.config, c.batch, COUNTERS[c.backend], seed=c.seed, timeout_s=c.timeout_s / 3,
                        plugins=(ctx.entry.config.partition(":")[0],), overrides=c.overrides.to_dict(), preset=c.preset)
    return ctx.flops


def _compile_flag(ctx: Context):
    from bench.case import compile_flag

    return compile_flag(ctx.case)


def _step_gflop(ctx: Context, step, what: str) -> tuple[float | None, str]:
    """FLOPs of one timed step (headline convention): forward x NFE for a sampling step; for a
    training step the counted training-step FLOPs when `flops` was measured, else the analytic
    forward x (forward passes + 2) (backward = 2 forwards)."""
    from bench.measure.flops import analytic

    fwd = 2 * analytic(ctx.entry, ctx.config, ctx.case.batch)["macs"] / 1e9
    if what == "sample step":
        return fwd * step.nfe, "analytic forward x NFE"
    counted = (ctx.flops or {}).get("train_step", {}) or {}
    if counted.get("gflop"):
        return counted["gflop"], f"counted training step ({counted.get('method', 'flops record')})"
    return fwd * (step.nfe + 2), "analytic forward x (forward passes + 2)"


def _timed(ctx: Context, step, what: str) -> dict:
    from bench.measure.peaks import device_peak, utilization

    a, policy, c = ctx.adapter, policy_for(ctx.case), ctx.case
    peak_mark = a.reset_peak_memory(ctx.device)
    cpu_samples: list[float] = []
    device_samples: list[float] = []
    samples, reason, out = time_step(step.fn, a.sync, policy, cpu_samples=cpu_samples,
                                     device_timer=a.device_timer(ctx.device), device_samples=device_samples)
    if not a.all_finite(out):
        raise ValueError(f"non-finite {what} output (checked after timing)")
    span = a.peak_memory_span(ctx.device, peak_mark)
    ctx.device_peak_bytes.append(span["bytes"])
    ctx.device_peak_covers.append(span["covers"])
    record = timing_record(samples, reason, policy, c.batch, compile_s=step.compile_seconds, compiled=step.compiled,
                           torch_compile=c.compile if c.backend == "torch" else None, nfe=step.nfe,
                           warmup=policy.warmup, notes=list(step.notes), device_peak_bytes=ctx.device_peak_bytes[-1],
                           device_peak_covers=span["covers"],
                           precision=ctx.built().policy.describe(), **ctx.env)
    record.update(cpu_record(samples, cpu_samples, ctx.env["threads"], ctx.env["device"]), **step.info)
    if device_samples:  # CUDA events next to the host wall clock
        from bench.measure.stats import summarize_ms

        events = summarize_ms(device_samples, c.batch)
        record["device_time"] = {"method": "CUDA events around the step on the current stream",
                                 "median_ms": events["median_ms"], "ci95_ms": events.get("ci95_ms"),
                                 "samples_ms": [v * 1e3 for v in device_samples]}
    if what == "sample step":
        record.update(per_sample(record, ctx, step.nfe))
    gflop, method = _step_gflop(ctx, step, what)
    dev = ctx.env["device"]
    peak = device_peak(str(dev.get("name", "")), _platform(dev), c.precision, ctx.cpu_peak_gflop_per_s)
    record["utilization"] = {**utilization(gflop, record["median_ms"], peak), "gflop_per_step": gflop,
                             "flop_method": method}
    return record


def per_sample(record: dict, ctx: Context, nfe_per_step: int) -> dict:
    """Generated samples per second: batch / (step time x sampling steps per sample), where a
    sample takes nfe_per_sample network evaluations and one timed step makes nfe_per_step."""
    from bench.measure.flops import nfe_per_sample

    nfe = (ctx.flops or {}).get("nfe_per_sample") or nfe_per_sample(ctx.config, ctx.entry.process)
    steps = nfe / nfe_per_step
    rate, ci = record.get("image_steps_per_s"), record.get("image_steps_per_s_ci95")
    return {"steps_per_sample": steps, "samples_per_s": None if rate is None else rate / steps,
            "samples_per_s_ci95": None if ci is None else [v / steps for v in ci]}


def _platform(device: dict) -> str:
    name = str(device.get("platform") or device.get("device", "cpu")).split(":")[0]
    return {"gpu": "cuda", "cuda": "cuda", "tpu": "tpu"}.get(name, "cpu")


CONTENTION_RATIO = 1.2  # wall / CPU time above this means the step did not get even one full core


def cpu_record(wall_s: list[float], cpu_s: list[float], threads: int, device: dict, load=None) -> dict:
    """Process CPU time per step next to wall time, and a contention flag for any thread count:
    (a) wall / CPU > 1.2: the step's threads together got less than one core's time; or (b) the
    run queue (1-minute load, where the OS reports it) holds more runnable work than logical CPUs
    while the step used under 1 / 1.2 of its threads' capacity (CPU time < wall x threads / 1.2)."""
    import os

    import numpy as np

    if not cpu_s:
        return {}
    wall, cpu = np.median(wall_s), np.median(cpu_s)
    ratio = float(wall / cpu) if cpu > 0 else None
    used = float(cpu / (wall * threads)) if wall > 0 and threads else None
    if load is None and hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
    cpus = os.cpu_count()
    why = None
    if _platform(device) == "cpu":
        if ratio is not None and ratio > CONTENTION_RATIO:
            why = f"wall/CPU {ratio:.2f} > {CONTENTION_RATIO} with {threads} thread(s)"
        elif load is not None and cpus and load > cpus and used is not None and used < 1 / CONTENTION_RATIO:
            why = f"run-queue load {load:.1f} > {cpus} CPUs while the step used {used:.0%} of {threads} thread(s)"
    return {"cpu_median_ms": float(cpu * 1e3), "cpu_samples_ms": [float(v * 1e3) for v in cpu_s],
            "wall_over_cpu": ratio, "cpu_utilization": used, "load_1m": load, "cpu_count": cpus,
            "contended": why is not None, "contention": why}


def measure_train(ctx: Context) -> dict:
    """Budgeted training (bench.training.run); the built model then holds the trained weights."""
    from bench.records import record_filename
    from bench.training.case_train import train_case

    return train_case(ctx, ctx.run_dir, record_filename(ctx.case.index, ctx.case.id)[:-5])


def measure_sample_step(ctx: Context) -> dict:
    c = ctx.case
    kwargs = {"cuda_graphs": True} if c.cuda_graphs else {}
    step = ctx.adapter.make_sample_step(ctx.built(), c.batch, seed=c.seed, compile=_compile_flag(ctx), **kwargs)
    from architectures.processes.guidance import mode_of
    from bench.backends.framework_free import conditional

    return {**_timed(ctx, step, "sample step"), "guidance_mode": mode_of(ctx.config.process, conditional(ctx.config))}


def measure_train_step(ctx: Context) -> dict:
    c = ctx.case
    with ctx.adapter.restored(ctx.built()):  # later measurements see the weights the record names
        step = ctx.adapter.make_train_step(ctx.built(), c.batch, seed=c.seed, compile=_compile_flag(ctx))
        return _timed(ctx, step, "train step")


def measure_memory(ctx: Context) -> dict:
    """Peak RSS over this process's life; device peak over the timed steps (reset before each).
    Without a timed step, one training step runs first."""
    from bench.measure.memory import memory_record

    a, timed = ctx.adapter, bool(ctx.device_peak_bytes)
    if not timed:
        peak_mark = a.reset_peak_memory(ctx.device)
        with a.restored(ctx.built()):
            step = a.make_train_step(ctx.built(), ctx.case.batch, seed=ctx.case.seed, compile=_compile_flag(ctx))
            if not a.all_finite(a.sync(step.fn())):
                raise ValueError("non-finite train step output (memory run)")
        span = a.peak_memory_span(ctx.device, peak_mark)
        ctx.device_peak_bytes.append(span["bytes"])
        ctx.device_peak_covers.append(span["covers"])
    peaks = [(p, c) for p, c in zip(ctx.device_peak_bytes, ctx.device_peak_covers) if p is not None]
    method = {"torch": "torch.cuda.max_memory_allocated, reset before the steps",
              "jax": "device.memory_stats()['peak_bytes_in_use'], compared with its value before the steps"}
    rec = memory_record(max(peaks)[0] if peaks else None, str(ctx.device), method[ctx.case.backend])
    rec["covers"] = "the timed steps" if timed else "one training step"
    rec["device_peak_covers"] = max(peaks)[1] if peaks else None  # exact for that span, or an upper bound
    return rec


def measure_quality(ctx: Context) -> dict:
    """Sample N with the family's sampler and score them (bench/quality/measure.py)."""
    from bench.quality.measure import measure_quality as run

    return run(ctx)
