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
    device_peaks: list = field(default_factory=list)  # device peak bytes of each timed step (None on CPU)
    artifacts: Any = None  # directory for files the case keeps (samples), or None
    weights: str = "initial"  # what ctx.built() holds: "initial" (seeded init) or where trained weights came from
    _built: Any = None

    def built(self):
        """The real model on the case's device, built once."""
        if self._built is None:
            self._built = self.adapter.build(self.entry, self.config, seed=self.case.seed, device=self.device)
        return self._built


def pin_threads(case) -> dict:
    """Pin intra-op threads before the framework starts (the worker may already have done so)."""
    from bench.backends import host
    from bench.backends.threads import resolve_threads

    threads = resolve_threads(case.threads)
    if "torch" not in sys.modules and "jax" not in sys.modules:
        host.pin_threads(threads)
    return {"threads": threads}


def make_context(case) -> Context:
    from architectures import registry
    from bench import backends, spec

    threads = pin_threads(case)["threads"]
    ctx = Context(case, registry.get(case.arch), spec.resolve_config(case))
    ctx.adapter = backends.get(case.backend)
    ctx.device = ctx.adapter.resolve_device(case.device)  # DeviceError says what was found
    ctx.env = {"threads": threads, **ctx.adapter.set_threads(threads),
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
    return flops_record(ctx.entry, ctx.config, c.batch, COUNTERS[c.backend], seed=c.seed, timeout_s=c.timeout_s / 3,
                        plugins=(ctx.entry.config.partition(":")[0],), overrides=c.overrides.to_dict(), preset=c.preset)


def _compile_flag(ctx: Context) -> bool:
    """jax always compiles ahead of time; torch.compile only when the case asks."""
    return True if ctx.case.backend == "jax" else ctx.case.compile


def _timed(ctx: Context, step, what: str) -> dict:
    a, policy, c = ctx.adapter, policy_for(ctx.case), ctx.case
    a.reset_peak_memory(ctx.device)
    samples, reason, out = time_step(step.fn, a.sync, policy)
    if not a.all_finite(out):
        raise ValueError(f"non-finite {what} output (checked after timing)")
    ctx.device_peaks.append(a.peak_memory(ctx.device))
    return timing_record(samples, reason, policy, c.batch, compile_s=step.compile_seconds, compiled=step.compiled,
                         torch_compile=c.compile if c.backend == "torch" else None, nfe=step.nfe,
                         warmup=policy.warmup, notes=list(step.notes), device_peak_bytes=ctx.device_peaks[-1],
                         **ctx.env)


def measure_sample_step(ctx: Context) -> dict:
    c = ctx.case
    step = ctx.adapter.make_sample_step(ctx.built(), c.batch, seed=c.seed, compile=_compile_flag(ctx))
    return _timed(ctx, step, "sample step")


def measure_train_step(ctx: Context) -> dict:
    c = ctx.case
    step = ctx.adapter.make_train_step(ctx.built(), c.batch, seed=c.seed, compile=_compile_flag(ctx))
    return _timed(ctx, step, "train step")


def measure_memory(ctx: Context) -> dict:
    """Peak RSS over this process's life; device peak over the timed steps (reset before each).
    Without a timed step, one training step runs first."""
    from bench.measure.memory import memory_record

    a, timed = ctx.adapter, bool(ctx.device_peaks)
    if not timed:
        a.reset_peak_memory(ctx.device)
        step = a.make_train_step(ctx.built(), ctx.case.batch, seed=ctx.case.seed, compile=_compile_flag(ctx))
        if not a.all_finite(a.sync(step.fn())):
            raise ValueError("non-finite train step output (memory run)")
        ctx.device_peaks.append(a.peak_memory(ctx.device))
    peaks = [p for p in ctx.device_peaks if p is not None]
    method = {"torch": "torch.cuda.max_memory_allocated", "jax": "device.memory_stats()['peak_bytes_in_use']"}
    rec = memory_record(max(peaks) if peaks else None, str(ctx.device), method[ctx.case.backend])
    rec["covers"] = "the timed steps" if timed else "one training step"
    return rec


def measure_quality(ctx: Context) -> dict:
    """Sample N with the family's sampler and score them (bench/quality/measure.py)."""
    from bench.quality.measure import measure_quality as run

    return run(ctx)
