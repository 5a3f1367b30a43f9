"""run_case end to end, each batch of cases in a fresh process (run_case pins threads and CPU
affinity, as the worker's case process does). Never asserts absolute times."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, os, sys
    from bench.case import Case
    from bench.measure import run_case
    from architectures import plugins
    plugins.load_plugins()  # DIFFBENCH_PLUGINS, as the worker does
    out = []
    for spec in json.loads(sys.argv[1]):
        spec = dict(dict(id=spec["arch"], index=0, overrides={}, device="cpu", batch=2, threads=1, timeout_s=16.0), **spec)
        try:
            out.append({"ok": run_case(Case(**spec))})
        except Exception as exc:
            out.append({"error": type(exc).__name__, "message": str(exc)})
    out.append({"affinity": len(os.sched_getaffinity(0)), "omp": os.environ.get("OMP_NUM_THREADS")})
    print(json.dumps(out))
""")


def run_cases(*specs) -> list[dict]:
    env_plugins = {"DIFFBENCH_PLUGINS": "tests.fault_arch"}
    import os

    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(specs)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env_plugins})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_timing(t: dict, batch: int):
    assert t["reps"] == len(t["samples_ms"]) >= t["policy"]["min_reps"] or t["stop_reason"] == "time_cap"
    assert min(t["samples_ms"]) <= t["median_ms"] <= max(t["samples_ms"])
    lo, hi = t["ci95_ms"]
    assert lo <= t["median_ms"] <= hi
    assert t["image_steps_per_s"] == pytest.approx(batch / (t["median_ms"] / 1e3))
    assert t["stop_reason"] in ("converged", "max_reps", "time_cap") and t["warmup"] == t["policy"]["warmup"]


def test_torch_case_records_threads_timing_and_memory():
    rec, env = run_cases(dict(arch="rin", preset="rin-tiny", backend="torch",
                              measure=["params", "sample_step", "train_step", "memory"]))
    r = rec["ok"]
    assert env == {"affinity": 1, "omp": "1"}
    assert set(r) == {"params", "timing", "memory"} and r["params"] > 0
    for name in ("sample_step", "train_step"):
        t = r["timing"][name]
        _check_timing(t, 2)
        assert t["threads"] == 1 and t["torch_threads"] == 1 and t["device"]["device"] == "cpu"
        assert t["torch_compile"] == "none" and t["compile_s"] is None
    assert r["timing"]["train_step"]["nfe"] == 2  # self-conditioning: 2 forward passes per step
    assert r["memory"]["peak_rss_bytes"] > 50e6 and r["memory"]["device_peak_bytes"] is None


def test_sample_step_records_the_guidance_mode():
    """A guided sample step records how its two evaluations ran (default: one batch-2B call)."""
    guided = {"process": {"guidance_scale": 1.5}}
    recs = run_cases(*[dict(arch="rin", preset="rin-tiny", backend="torch", measure=["sample_step"], batch=1,
                            overrides=o) for o in (guided, {"process": {**guided["process"], "guidance_mode": "two_calls"}},
                                                   {})])
    modes = [(r["ok"]["timing"]["sample_step"]["guidance_mode"], r["ok"]["timing"]["sample_step"]["nfe"])
             for r in recs[:3]]
    assert modes == [("batched", 2), ("two_calls", 2), (None, 1)]


def test_jax_case_compiles_outside_the_timed_region():
    rec, env = run_cases(dict(arch="rin", preset="rin-tiny", backend="jax", measure=["sample_step", "memory"]))
    t = rec["ok"]["timing"]["sample_step"]
    _check_timing(t, 2)
    assert t["xla_threads"] == 1 and t["threads"] == 1 and env["affinity"] == 1
    assert t["compiled"] and t["compile_s"] > 0


def test_jax_steps_compile_before_the_clock_starts():
    """Calling a jax step compiles nothing (jax.log_compiles logs no "Compiling"): the compile
    cost is recorded as compile_s and is never inside a timed sample."""
    import logging

    import jax

    from architectures import registry
    from bench.backends import jax_adapter as jb

    class Seen(logging.Handler):
        messages: list = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    entry = registry.get("rin")
    built = jb.build(entry, entry.preset("rin-tiny").config, seed=0)
    steps = [jb.make_sample_step(built, 2, seed=0, compile=True), jb.make_train_step(built, 2, seed=0, compile=True)]
    seen, log = Seen(), logging.getLogger("jax")
    log.addHandler(seen)
    try:
        with jax.log_compiles(True):
            jax.jit(lambda x: x + 1)(1.0)  # the control: a fresh jit is logged
            assert any(m.startswith("Compiling") for m in seen.messages), seen.messages
            seen.messages.clear()
            for step in steps:
                for _ in range(2):
                    jb.sync(step.fn())
    finally:
        log.removeHandler(seen)
    assert all(s.compiled and s.compile_seconds > 0 for s in steps)
    assert not [m for m in seen.messages if m.startswith("Compiling")], seen.messages


def test_failures_raise_and_flops_use_the_plugin_architecture():
    nan, cuda, flops, env = run_cases(
        dict(arch="fault-nan", preset="fault-nan-tiny", backend="torch", measure=["sample_step"]),
        dict(arch="rin", preset="rin-tiny", backend="torch", device="cuda", measure=["params"]),
        dict(arch="fault-ok", preset="fault-ok-tiny", backend="torch", measure=["flops"], timeout_s=120.0),
    )
    assert nan["error"] == "ValueError" and "non-finite" in nan["message"]
    assert cuda["error"] == "DeviceError" and "no CUDA" in cuda["message"]
    f = flops["ok"]["flops"]
    assert f["agreement"]["ok"] and set(f["agreement"]["checked"]) == {"fvcore", "torch_flop_counter"}
    assert f["gflop"] == pytest.approx(2 * f["gmac"]) and f["train_step"]["gflop"] > f["gflop"]
    assert f["nfe_per_sample"] == 100 and f["gflop_per_sample"] == pytest.approx(100 * f["gflop_per_image"])
