"""The CPU matmul reference (bench/measure/cpu_peak.py): a stable best, a contention check, a
re-measure when contended, and no MFU against a contended reference. Fake clocks drive the logic
(no timing thresholds); one real run checks the command's output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.measure import cpu_peak
from bench.measure.peaks import device_peak, utilization
from bench.child_process import child_env


class FakeClocks:
    """Each call() advances wall by the next `walls` value and CPU time by `cpu_ratio` x that."""

    def __init__(self, walls, cpu_ratio):
        self.walls, self.cpu_ratio, self.wall, self.cpu, self.i = list(walls), cpu_ratio, 0.0, 0.0, 0

    def call(self):
        w = self.walls[min(self.i, len(self.walls) - 1)]
        self.i += 1
        self.wall += w
        self.cpu += w * (self.cpu_ratio(self.i) if callable(self.cpu_ratio) else self.cpu_ratio)

    def clock(self):
        return self.wall

    def cpu_clock(self):
        return self.cpu


def _best(fake, threads=1, seconds=1e9):
    return cpu_peak.best_call(fake.call, threads, fake.clock, fake.cpu_clock, seconds)


def test_best_is_taken_once_stable_not_in_a_fixed_window():
    """The times keep improving for 30 calls, then level off: the best comes after the levelling,
    and the loop stops PATIENCE calls later."""
    walls = [0.1 * 0.9**i for i in range(30)] + [0.1 * 0.9**30] * 100
    out = _best(FakeClocks(walls, 1.0))
    assert out["best_s"] == pytest.approx(0.1 * 0.9**30) and out["stop"] == "stable"
    assert out["reps"] == 30 + cpu_peak.PATIENCE + 1 and not out["contended"] and out["clean_fraction"] == 1.0


def test_time_cap_when_it_never_settles():
    out = _best(FakeClocks([1.0 / (i + 1) for i in range(1000)], 1.0), seconds=2.0)
    assert out["stop"] == "time_cap" and out["reps"] >= 3


def test_calls_with_too_little_cpu_time_are_contended():
    """One thread, half the wall clock on the CPU: another process had the core."""
    out = _best(FakeClocks([0.01] * 100, 0.5))
    assert out["contended"] and out["clean_fraction"] == 0.0 and out["best_cpu_over_wall"] == pytest.approx(0.5)
    two = _best(FakeClocks([0.01] * 100, 1.5), threads=2)  # 2 threads, 1.5 CPUs busy: under CLEAN
    assert two["contended"]
    assert not _best(FakeClocks([0.01] * 100, 1.9), threads=2)["contended"]


def test_contended_attempts_are_repeated_and_the_best_kept():
    results = iter([{"best_s": 0.5, "contended": True}, {"best_s": 0.01, "contended": True},
                    {"best_s": 0.02, "contended": False}])
    pauses = []

    def attempt(call, threads):
        return {"reps": 20, "stop": "stable", "clean_fraction": 0.1, "best_cpu_over_wall": 0.5, **next(results)}

    out = cpu_peak.measure_dtype(None, 1, 1e9, attempt=attempt, pause=pauses.append)
    assert out["attempts"] == 3 and len(pauses) == 2
    assert out["gflop_per_s"] == pytest.approx(100.0) and out["contended"] is True  # the fastest, and it was contended
    assert out["attempts_gflop_per_s"] == pytest.approx([2.0, 100.0, 50.0])


def test_clean_first_attempt_is_not_repeated():
    out = cpu_peak.measure_dtype(None, 1, 1e9, attempt=lambda c, t: {
        "best_s": 0.01, "contended": False, "reps": 25, "stop": "stable", "clean_fraction": 1.0,
        "best_cpu_over_wall": 1.0}, pause=lambda s: pytest.fail("paused"))
    assert out["attempts"] == 1 and out["contended"] is False


def test_no_mfu_against_a_contended_reference():
    cpu = {"fp32": {"gflop_per_s": 100.0, "method": "measured", "contended": True}}
    peak = device_peak("x86_64", "cpu", "fp32", cpu)
    assert peak["contended"] is True
    u = utilization(50.0, 1000.0, peak)  # 0.5 of a reference that is too low by an unknown factor
    assert u["mfu"] is None and u["mfu_flagged"] == pytest.approx(0.5) and "other load" in u["mfu_why_null"]
    clean = utilization(50.0, 1000.0, device_peak("x86_64", "cpu", "fp32", {"fp32": {"gflop_per_s": 100.0, "method": "m"}}))
    assert clean["mfu"] == pytest.approx(0.5)


def test_the_command_prints_a_checked_reference():
    env = child_env()  # this checkout
    proc = subprocess.run([sys.executable, "-P", "-m", "bench.measure.cpu_peak", "1"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    for name in ("fp32", "bf16"):
        m = out[name]
        assert m["gflop_per_s"] > 0 and m["reps"] >= 3 and m["stop"] in ("stable", "time_cap")
        assert isinstance(m["contended"], bool) and 1 <= m["attempts"] <= cpu_peak.ATTEMPTS
        assert "contention-checked" in m["method"]
