"""Learning curves: a `train:` with eval_at scores the model at points of its budget, without
disturbing the training (the same case without the curve trains to the same losses)."""
import json

import numpy as np
import pytest

from bench import suite_file
from bench.runner import run_suite

SUITE = """
name: curve
defaults: {backend: torch, threads: 1, batch: 2, timeout: 300,
           quality: {metrics: [fd-effnet, kid], n: 4, steps: 2, batch: 4, dataset: shapes}}
cases:
  - preset: unet2d-tiny
    measure: [train, quality]
    train: {dataset: shapes, budget: {steps: 4}, lr: 1.0e-3, ema: 0.5, log_every: 1, limit: 8, eval_at: [0, 0.5]}
  - preset: unet2d-tiny
    measure: [train, quality]
    train: {dataset: shapes, budget: {steps: 4}, lr: 1.0e-3, ema: 0.5, log_every: 1, limit: 8}
"""


def test_learning_curve_points_do_not_disturb_training(tmp_path):
    path = tmp_path / "curve.yaml"
    path.write_text(SUITE)
    run_dir = run_suite(suite_file.load(path), results_root=tmp_path / "results", show_progress=False)
    curve_rec, plain_rec = [json.loads(p.read_text()) for p in sorted(run_dir.glob("0*.json"))]
    assert curve_rec["status"] == plain_rec["status"] == "ok", (curve_rec.get("error"), plain_rec.get("error"))
    t, plain = curve_rec["train"], plain_rec["train"]
    assert "quality_curve" not in plain
    assert t["loss_curve"]["loss"] == pytest.approx(plain["loss_curve"]["loss"], rel=1e-6)
    for a, b in zip(curve_rec["quality"]["metrics"], plain_rec["quality"]["metrics"]):  # same end point
        assert a["value"] == pytest.approx(b["value"], rel=1e-6)
    points = t["quality_curve"]
    assert [p["step"] for p in points] == [0, 2]
    step_gflop = t["step_flops"]["flop"] / 1e9
    assert [p["train_gflop"] for p in points] == pytest.approx([0.0, 2 * step_gflop])
    assert points[0]["wall_s"] == 0.0 and 0 < points[1]["wall_s"] <= t["duration_s"]
    for p in points:
        assert p["weights"] == "ema" and {m["metric"] for m in p["metrics"]} == {"fd-effnet", "kid"}
        for m in p["metrics"]:
            assert m["ci95"][0] <= m["value"] <= m["ci95"][1] and np.isfinite(m["floor"])
