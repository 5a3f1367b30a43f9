"""`train: {stages: [...]}` (bench.training.stages): a two-stage mdm-tiny case equals, stage by
stage, the two cases it replaces (mdm-tiny-inner, then mdm-tiny chained by `train.init`) in the
same process with the same seeds; its settings are checked at plan time with one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from architectures import registry
from bench import backends, suite_file
from bench.measure.case_measurements import Context
from bench.strict_yaml import SpecError
from bench.training import case_train, checkpoint, progressive, run, stages
from tests import test_record_schema

TRAIN = "dataset: shapes, limit: 8, warmup: 0, log_every: 1"
SUITE = """
name: stages
defaults: {{backend: {backend}, threads: 1, batch: 2, seed: 3, measure: [train]}}
cases:
  - preset: {preset}
    train: {{{train}}}
"""


def _case(tmp_path, backend: str, preset: str, train: str):
    return suite_file.loads(SUITE.format(backend=backend, preset=preset, train=train), str(tmp_path / "s.yaml")).cases[0]


def _train(case, run_dir):
    adapter = backends.get(case.backend)
    ctx = Context(case, registry.get(case.arch), suite_file.resolve_config(case), adapter=adapter,
                  device=adapter.resolve_device("cpu"))
    run_dir.mkdir()
    return ctx, case_train.train_case(ctx, str(run_dir), "case")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("backend", ["torch", pytest.param("jax", marks=pytest.mark.slow)])  # jax: 4 XLA compiles
def test_two_stages_equal_the_inner_case_then_the_chained_nest_case(backend, tmp_path, monkeypatch):
    uncounted = {"flop": None, "gflop": None, "error": "not counted here"}
    monkeypatch.setattr(run, "count_step_flops", lambda *a, **k: uncounted)
    adapter = backends.get(backend)
    _, inner = _train(_case(tmp_path, backend, "mdm-tiny-inner", f"{TRAIN}, budget: {{steps: 3}}"), tmp_path / "a")
    inner_ckpt = checkpoint.read(tmp_path / "a" / inner["checkpoint"])
    chained_case = _case(tmp_path, backend, "mdm-tiny", f"{TRAIN}, budget: {{steps: 2}}, "
                                                        f"init: {tmp_path / 'a' / inner['checkpoint']}")
    chained_ctx, chained = _train(chained_case, tmp_path / "b")
    staged_case = _case(tmp_path, backend, "mdm-tiny", f"{TRAIN}, stages: [{{levels: 1, budget: {{steps: 3}}}}, "
                                                       "{levels: 2, budget: {steps: 2}}]")
    started, set_inner = [], progressive.set_inner  # the stage-2 model's inner U-Net right after its init

    def spy(built, weights, depth=1):
        out = set_inner(built, weights, depth)
        started.append({k[6:]: v for k, v in adapter.export_weights(built).items() if k.startswith("inner/")})
        return out
    monkeypatch.setattr(progressive, "set_inner", spy)
    staged_ctx, staged = _train(staged_case, tmp_path / "c")

    one, two = staged["stages"]
    assert one["loss_curve"] == inner["loss_curve"] and one["resolution"] == 16 and one["init"] is None
    stage1 = checkpoint.read(tmp_path / "c" / one["checkpoint"])
    assert _same(stage1.weights, inner_ckpt.weights) and stage1.meta["config"]["levels"][0]["resolution"] == 16
    assert len(started) == 1 and _same(started[0], stage1.weights)  # stage 2 starts from stage 1's weights
    assert two["init"]["inner_depth"] == 1 and two["init"]["from"] == "stage 1" and two["resolution"] == 32
    assert two["loss_curve"] == chained["loss_curve"] and np.isfinite(two["final_loss"])
    stage2 = checkpoint.read(tmp_path / "c" / two["checkpoint"])
    assert _same(stage2.weights, checkpoint.read(tmp_path / "b" / chained["checkpoint"]).weights)
    assert _same(adapter.export_weights(staged_ctx.built()), adapter.export_weights(chained_ctx.built()))
    assert staged["steps"] == 5 and staged["checkpoint"] == two["checkpoint"]
    assert staged["final_loss"] == two["final_loss"] and staged["examples_seen"] == 10
    documented = test_record_schema._documented()
    fields = test_record_schema.flat({"train": staged, "case": {"train": staged_case.train.to_dict()}})
    missing = [f for f in sorted(fields) if not any(p.fullmatch(f) for p in documented)]
    assert missing == [], missing


def test_a_stage_is_counted_as_the_smaller_preset(tmp_path):
    """The FLOP counter's child builds a stage (CountJob.levels) as the model of mdm-tiny-inner."""
    case = _case(tmp_path, "torch", "mdm-tiny", f"{TRAIN}, stages: [{{levels: 1, budget: {{steps: 1}}}}, "
                                                "{levels: 2, budget: {steps: 1}}]")
    entry = registry.get("nested_unet")
    small = stages.stage_config(suite_file.resolve_config(case), 1)
    assert small.levels == entry.preset("mdm-tiny-inner").config.levels and small.process.resolutions == (16,)
    inner = _case(tmp_path, "torch", "mdm-tiny-inner", f"{TRAIN}, budget: {{steps: 1}}")
    got, want = run.count_step_flops(case, entry, 2, levels=1), run.count_step_flops(inner, entry, 2)
    assert got["flop"] == want["flop"] > 0 and got["gflop"] == want["gflop"]


def test_eval_after_stages_scores_the_stage_model_at_its_own_side(tmp_path, monkeypatch):
    """Stage 1's model (its final weights, 16 px) is scored after its stage; the last stage is
    left to the case's `quality` measurement."""
    from bench.quality import measure

    monkeypatch.setattr(run, "count_step_flops", lambda *a, **k: {"flop": None, "gflop": None, "error": "-"})
    scored = []

    def score_now(ctx, cache):
        scored.append((ctx.config.levels[0].resolution, ctx.adapter.export_weights(ctx.built())))
        return {"metrics": [], "sampling_s": 0.0, "scoring_s": 0.0}
    monkeypatch.setattr(measure, "score_now", score_now)
    text = SUITE.replace("measure: [train]", "measure: [train, quality]").format(
        backend="torch", preset="mdm-tiny", train=f"{TRAIN}, eval_after_stages: true, "
        "stages: [{levels: 1, budget: {steps: 2}}, {levels: 2, budget: {steps: 1}}]")
    ctx, staged = _train(suite_file.loads(text, "s.yaml").cases[0], tmp_path / "r")
    one, two = staged["stages"]
    assert len(scored) == 1 and scored[0][0] == 16 and "quality" not in two
    assert one["quality"] == {"resolution": 16, "weights": "trained", "metrics": [], "sampling_s": 0.0, "scoring_s": 0.0}
    assert _same(scored[0][1], checkpoint.read(tmp_path / "r" / one["checkpoint"]).weights)
    assert ctx.config.levels[0].resolution == 32  # the case's own context still holds the whole nest


STAGES = "[{levels: 1, budget: {steps: 2}}, {levels: 2, budget: {steps: 2}}]"


@pytest.mark.parametrize("preset, train, path, words", [
    ("mdm-tiny", f"budget: {{steps: 2}}, stages: {STAGES}", "train.stages", "both budget and stages"),
    ("mdm-tiny", "stages: []", "train.stages", "a list of 1 to 16 stages"),
    ("mdm-tiny", "stages: [{levels: 2}]", "train.stages[0]", "missing key 'budget'"),
    ("mdm-tiny", "stages: [{levels: 2, budget: {steps: 2}, ema: 0.9}]", "train.stages[0].ema", "unknown key"),
    ("mdm-tiny", "stages: [{levels: 0, budget: {steps: 2}}]", "train.stages[0].levels", "bad levels 0"),
    ("mdm-tiny", "stages: [{levels: 2, budget: {steps: 2}}, {levels: 1, budget: {steps: 2}}]",
     "train.stages[1].levels", "below the previous"),
    ("mdm-tiny", "stages: [{levels: 1, budget: {steps: 2}}]", "train.stages[0].levels", "the whole nest"),
    ("mdm-tiny", "stages: [{levels: 3, budget: {steps: 2}}]", "train.stages[0].levels", "the nest has 2"),
    ("mdm-tiny", f"stages: {STAGES}, eval_every: 1", "train.eval_every", "within stages"),
    ("mdm-tiny", f"stages: {STAGES}, eval_after_stages: true", "train.eval_after_stages", "quality"),
    ("mdm-tiny", "budget: {steps: 2}, eval_after_stages: true", "train.eval_after_stages", "without stages"),
    ("mdm-tiny", "stages: [{levels: 2, budget: {steps: 2}, lr: -1}]", "train.stages[0].lr", "bad lr -1"),
    ("unet2d-tiny", f"stages: {STAGES}", "train.stages", "no `levels`"),
])
def test_bad_stages_stop_the_plan_with_one_line(tmp_path, preset, train, path, words):
    with pytest.raises(SpecError) as err:
        _case(tmp_path, "torch", preset, f"{TRAIN.replace(', warmup: 0', '')}, {train}")
    message = str(err.value)
    assert "\n" not in message and f": cases[0].{path}: " in message and words in message and "allowed:" in message
