"""Measurements never change each other's inputs: the timed training step and the `memory`
run leave the model exactly as they found it (torch updates weights in place, jax donates
them), so `quality` samples the weights its record names whatever else the case measures.

The measurements of bench.measure.case_measurements run one after another on one case context, as run_case
runs them, in a fresh process (make_context pins threads and CPUs, as the worker's case does)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import json, sys
    from bench.case import Case
    from bench.measure import case_measurements as m
    backend, out_dir = sys.argv[1], sys.argv[2]
    case = Case(id="c", index=0, arch="dit", preset="dit-tiny", overrides={}, backend=backend, device="cpu",
                batch=2, threads=1, timeout_s=8.0, measure=("train", "train_step", "memory", "quality"),
                quality=dict(metrics=["kid"], n=2, steps=2, batch=2),
                train=dict(dataset="shapes", budget={"steps": 3}, lr=1e-2))
    ctx, seen = m.make_context(case), []  # pins threads before torch or jax is imported
    from bench.quality import measure
    measure.metrics.score = lambda *a, **k: []  # the samples are under test, not their scores

    def sample(after):
        ctx.artifacts = f"{out_dir}/{len(seen)}"
        m.measure_quality(ctx)
        seen.append(after)

    sample("nothing")
    m.measure_train_step(ctx); sample("train_step")
    ctx.device_peak_bytes = []  # nothing timed: memory runs a training step of its own
    m.measure_memory(ctx); sample("memory")
    train = m.measure_train(ctx); sample("train")
    m.measure_train_step(ctx); sample("train, train_step")
    print(json.dumps({"seen": seen, "train": {k: train[k] for k in ("precision", "compile_s", "timed_steps")}}))
""")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_timed_training_step_and_memory_leave_the_weights_alone(backend, tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    alone, after_step, after_memory, trained, trained_then_step = (
        np.load(tmp_path / str(i) / "samples.npz")["samples"] for i in range(len(out["seen"])))
    np.testing.assert_array_equal(after_step, alone)
    np.testing.assert_array_equal(after_memory, alone)
    assert not np.array_equal(trained, alone)  # training moved the weights ...
    np.testing.assert_array_equal(trained_then_step, trained)  # ... and the timed step did not move them on
    train = out["train"]  # the train record states its precision, and its rate leaves compiling out
    assert train["precision"]["precision"] == "fp32" and train["timed_steps"] == 3
    assert (train["compile_s"] > 0) if backend == "jax" else train["compile_s"] is None
