"""Adaptive wall-clock timing of one step.

Protocol (docs/measurement.md): inputs are built and the step compiled before this is called;
`warmup` untimed calls; then timed calls, each synced (the device queue drained before the
clock starts and the result blocked on before it stops), until IQR/median < target after at
least `min_reps` samples, or `max_reps` samples, or `time_cap_s` of timed wall clock.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from bench.measure.stats import rel_iqr, summarize_ms


@dataclass(frozen=True)
class TimingPolicy:
    warmup: int = 3  # untimed calls at the exact shapes (caches, allocator, autotuning)
    min_reps: int = 10  # samples before the stop rule is checked (TorchBench times 15)
    max_reps: int = 100
    target_rel_iqr: float = 0.05  # stop when IQR / median is below this
    time_cap_s: float = 10.0  # or when the timed calls have used this much wall clock

    def __post_init__(self):
        if self.warmup < 0 or self.min_reps < 3 or self.max_reps < self.min_reps:
            raise ValueError(f"bad TimingPolicy {self}: need warmup >= 0, min_reps >= 3, max_reps >= min_reps")
        if self.target_rel_iqr <= 0 or self.time_cap_s <= 0:
            raise ValueError(f"bad TimingPolicy {self}: target_rel_iqr and time_cap_s must be > 0")


def _stop_reason(samples: list[float], elapsed: float, policy: TimingPolicy) -> str | None:
    n = len(samples)
    if n >= policy.min_reps and rel_iqr(samples) < policy.target_rel_iqr:
        return "converged"
    if n >= policy.max_reps:
        return "max_reps"
    if elapsed >= policy.time_cap_s and n >= 3:
        return "time_cap"
    return None


def time_step(
    step: Callable[[], Any],
    sync: Callable[[Any], Any],
    policy: TimingPolicy = TimingPolicy(),
    clock: Callable[[], float] = time.perf_counter,
    cpu_samples: list[float] | None = None,
    device_timer: Any = None,
    device_samples: list[float] | None = None,
) -> tuple[list[float], str, Any]:
    """Returns (seconds per call, why it stopped, the last output). `sync(out)` must block until
    `out` is computed (and, on CUDA, the whole queue is drained); `sync(None)` drains the queue.
    `cpu_samples`, when given, receives the process CPU time (all threads) of each timed call;
    `device_timer` (CUDA events: .start(), .stop(), .seconds() after sync) fills `device_samples`."""
    out = None
    for _ in range(policy.warmup):
        out = step()
        sync(out)
    sync(out)
    samples: list[float] = []
    started = clock()
    while True:
        c0, t0 = time.process_time(), clock()
        if device_timer is not None:
            device_timer.start()
        out = step()
        if device_timer is not None:
            device_timer.stop()
        sync(out)
        samples.append(clock() - t0)
        if device_timer is not None and device_samples is not None:
            device_samples.append(device_timer.seconds())
        if cpu_samples is not None:
            cpu_samples.append(time.process_time() - c0)
        reason = _stop_reason(samples, clock() - started, policy)
        if reason:
            return samples, reason, out


def timing_record(samples_s: list[float], reason: str, policy: TimingPolicy, batch: int, **extra) -> dict:
    """The record's timing entry: statistics, raw samples, the stop rule and its parameters."""
    return {
        **summarize_ms(samples_s, batch),
        "reps": len(samples_s),
        "stop_reason": reason,
        "policy": asdict(policy),
        "batch": batch,
        **extra,
    }
