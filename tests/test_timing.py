"""Timing statistics and the adaptive stop rule, on synthetic data and a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.stats import bootstrap_median_ci, bootstrap_ratio_ci, iqr, rel_iqr, summarize_ms
from bench.measure.timing import TimingPolicy, time_step, timing_record


def test_iqr_of_uniform_grid():
    x = np.arange(101, dtype=float)  # percentiles of 0..100 are exact
    assert iqr(x) == pytest.approx(50.0)
    assert rel_iqr(x) == pytest.approx(1.0)


def _coverage(draw, true_value, ci, trials=300):
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(trials):
        lo, hi = ci(draw(rng), i)
        hits += lo <= true_value <= hi
    return hits / trials


def test_median_ci_covers_true_median_of_lognormal():
    # lognormal(0, 0.5): median exactly 1; heavy right tail like step times on a shared machine
    draw = lambda rng: rng.lognormal(0.0, 0.5, size=60)
    cov = _coverage(draw, 1.0, lambda x, i: bootstrap_median_ci(x, n_boot=400, seed=i))
    assert 0.88 <= cov <= 0.995, cov  # nominal 95%; the percentile bootstrap of a median is ~2% off


def test_median_ci_narrows_with_n():
    rng = np.random.default_rng(0)
    small = np.diff(bootstrap_median_ci(rng.exponential(size=30)))[0]
    large = np.diff(bootstrap_median_ci(rng.exponential(size=3000)))[0]
    assert large < small / 4  # width ~ 1/sqrt(n): sqrt(100) = 10


def test_ratio_ci_covers_true_ratio():
    # medians: 2 * ln2 and ln2 (exponential with scales 2 and 1) -> ratio exactly 2
    draw = lambda rng: (rng.exponential(2.0, size=50), rng.exponential(1.0, size=50))
    cov = _coverage(draw, 2.0, lambda ab, i: bootstrap_ratio_ci(*ab, n_boot=400, seed=i))
    assert 0.88 <= cov <= 0.995, cov


def test_summary_throughput_and_units():
    s = summarize_ms([0.010, 0.020, 0.030], batch=4)
    assert s["median_ms"] == pytest.approx(20.0)
    assert s["image_steps_per_s"] == pytest.approx(200.0)  # 4 images / 0.02 s
    assert s["samples_ms"] == pytest.approx([10.0, 20.0, 30.0])
    lo, hi = s["ci95_ms"]
    assert 10.0 <= lo <= 20.0 <= hi <= 30.0


class FakeClock:
    """A clock the fake step advances by a scripted duration per call."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, iter(durations), 0

    def __call__(self):
        return self.now

    def step(self):
        self.calls += 1
        self.now += next(self.durations)
        return self.calls


def test_stop_rule_converges_on_steady_steps():
    clock = FakeClock([0.01] * 1000)
    policy = TimingPolicy(warmup=2, min_reps=5, max_reps=100, target_rel_iqr=0.05, time_cap_s=100)
    samples, reason, out = time_step(clock.step, lambda o: o, policy, clock=clock)
    assert reason == "converged" and len(samples) == 5
    assert clock.calls == 7 and out == 7  # warmup calls are made but not timed
    assert samples == pytest.approx([0.01] * 5)


def test_stop_rule_hits_time_cap_on_noisy_steps():
    durations = np.tile([0.01, 0.05], 1000)  # IQR/median stays ~1.3: never converges
    clock = FakeClock(durations)
    policy = TimingPolicy(warmup=0, min_reps=5, max_reps=1000, target_rel_iqr=0.05, time_cap_s=1.0)
    samples, reason, _ = time_step(clock.step, lambda o: o, policy, clock=clock)
    assert reason == "time_cap"
    assert sum(samples) == pytest.approx(1.0, abs=0.05)  # stops at the first sample past 1 s


def test_stop_rule_hits_max_reps():
    clock = FakeClock(np.tile([0.01, 0.05], 1000))
    policy = TimingPolicy(warmup=0, min_reps=5, max_reps=12, target_rel_iqr=0.05, time_cap_s=1e9)
    samples, reason, _ = time_step(clock.step, lambda o: o, policy, clock=clock)
    assert (reason, len(samples)) == ("max_reps", 12)


def test_sync_is_called_inside_the_timed_region():
    clock = FakeClock([0.0] * 100)  # the step itself takes no time; the sync takes 0.02 s
    def sync(out):
        clock.now += 0.02
    policy = TimingPolicy(warmup=1, min_reps=3, max_reps=3, target_rel_iqr=0.05, time_cap_s=10)
    samples, _, _ = time_step(clock.step, sync, policy, clock=clock)
    assert samples == pytest.approx([0.02] * 3)


def test_record_keeps_policy_and_raw_samples():
    policy = TimingPolicy(min_reps=3, max_reps=3)
    rec = timing_record([0.01, 0.012, 0.011], "max_reps", policy, batch=2, compile_s=0.5)
    assert rec["policy"]["target_rel_iqr"] == policy.target_rel_iqr and rec["reps"] == 3
    assert rec["compile_s"] == 0.5 and len(rec["samples_ms"]) == 3


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError, match="min_reps"):
        TimingPolicy(min_reps=1)


def test_jax_timing_blocks_on_the_result():
    """The jax adapter's sync returns only once a step's output is computed (jax dispatch is
    asynchronous, CPU included), so every timed sample ends with a finished result. A chain of
    matmuls is not ready right after dispatch: a sync that did not block leaves it unready."""
    import jax
    import jax.numpy as jnp

    from bench.backends import jax_adapter

    def chain(x):
        for _ in range(8):
            x = jnp.tanh(x @ x)
        return x

    x = jnp.ones((384, 384), jnp.float32) / 384
    compiled = jax.jit(chain).lower(x).compile()
    ready = []

    def sync(out):
        jax_adapter.sync(out)
        ready.append(out.is_ready())

    time_step(lambda: compiled(x), sync, TimingPolicy(warmup=1, min_reps=5, max_reps=5, time_cap_s=30))
    assert len(ready) == 7 and all(ready)  # warmup, the drain before timing, 5 timed calls
