"""Checkpoints: written by torch and read by jax (and back) give the same outputs to 1e-5; the
format is verified on reading; a suite with a train case writes one and records the curve; a
case can start from one."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
import torch

from architectures import registry
from bench import suite_file
from bench.backends import framework_free
from bench.backends import jax_adapter as jb
from bench.backends import torch_adapter as tb
from bench.runner import run_suite
from bench.training import checkpoint


def rin_micro():
    cfg = registry.get("rin").preset("rin-tiny").config
    return dataclasses.replace(cfg, num_blocks=1)


def outputs(adapter, built, arrays) -> list[np.ndarray]:
    """The denoiser's prediction and latents on fixed inputs, canonical layout."""
    a = adapter.device_arrays(built, arrays)
    model = built.model if adapter is tb else built.params
    if adapter is tb:
        built.model.eval()
        with torch.no_grad():
            out = tb.denoiser(built, model)(a["x"], a["t"], a.get("y"), a.get("latents"))
        return [tb.to_numpy(o) for o in out]
    run = jax.jit(lambda params, a: jb.denoiser(built, params)(a["x"], a["t"], a.get("y"), a.get("latents")))
    return [np.asarray(o) for o in run(model, {k: v for k, v in a.items() if v is not None})]


def test_torch_checkpoint_read_by_jax_and_back_gives_the_same_outputs(tmp_path):
    entry, cfg = registry.get("rin"), rin_micro()
    arrays = framework_free.random_inputs(cfg.input_shapes(2), 5, cfg.num_classes)
    t_built = tb.build(entry, cfg, seed=0)
    with torch.no_grad():  # move norms and biases off their 1 / 0 init so every layout matters
        for p in t_built.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    meta = {"arch": "rin", "preset": "rin-tiny", "backend": "torch", "step": 0}
    first = checkpoint.write(tmp_path / "from_torch", tb.export_weights(t_built), meta)
    ckpt = checkpoint.read(first)
    assert ckpt.meta["format"] == checkpoint.FORMAT and ckpt.ema is None and "blocks_0/read/attn/q/weight" in ckpt.weights

    j_built = jb.build(entry, cfg, seed=0, abstract=True)
    jb.load_weights(j_built, ckpt.weights)
    j_built.abstract = False
    want = outputs(tb, t_built, arrays)
    for got, ref in zip(outputs(jb, j_built, arrays), want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)

    second = checkpoint.write(tmp_path / "from_jax", jb.export_weights(j_built), {**meta, "backend": "jax"})
    back = tb.build(entry, cfg, seed=1)  # another init, so only the checkpoint can make it agree
    assert not np.allclose(outputs(tb, back, arrays)[0], want[0], atol=1e-3)
    tb.load_weights(back, checkpoint.read(second).weights)
    for got, ref in zip(outputs(tb, back, arrays), want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    for name, tensor in back.model.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), t_built.model.state_dict()[name].numpy())


def test_a_checkpoint_is_verified_never_overwritten_and_checked_against_the_model(tmp_path):
    weights = {"a/weight": np.ones((2, 3), np.float32)}
    path = checkpoint.write(tmp_path / "c", weights, {"arch": "rin"}, ema={"a/weight": np.zeros((2, 3), np.float32)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary directory left
    ckpt = checkpoint.read(path)
    np.testing.assert_array_equal(ckpt.ema["a/weight"], 0)
    with pytest.raises(checkpoint.CheckpointError, match="already exists"):
        checkpoint.write(path, weights, {})
    with pytest.raises(checkpoint.CheckpointError, match="written for arch 'rin'"):
        checkpoint.check_compatible(ckpt, "unet2d")
    with open(path / checkpoint.EMA, "r+b") as f:
        f.seek(40)
        f.write(b"\x00\x01")
    with pytest.raises(checkpoint.CheckpointError, match="sha256 does not match"):
        checkpoint.read(path)
    with pytest.raises(checkpoint.CheckpointError, match="not a diffbench checkpoint"):
        checkpoint.read(tmp_path)
    built = tb.build(registry.get("rin"), rin_micro(), seed=0)
    from bench.convert import ConversionError

    with pytest.raises(ConversionError, match="not in the checkpoint"):
        tb.load_weights(built, weights)


SUITE = """
name: trainrun
defaults: {{backend: torch, threads: 1, batch: 2, timeout: 300}}
cases:
  - preset: unet2d-tiny
    measure: [train]
    train: {train}
"""


def _run(tmp_path, train: str, name: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(train=train))
    run_dir = run_suite(suite_file.load(path), results_root=tmp_path / "results", show_progress=False)
    (record,) = [json.loads(p.read_text()) for p in sorted(run_dir.glob("0*.json"))]
    assert record["status"] == "ok", record.get("error")
    return run_dir, record


def test_a_suite_train_case_stops_within_its_flop_budget_and_leaves_a_checkpoint_to_start_from(tmp_path):
    budget = 0.7  # unet2d-tiny at batch 2: 0.206 GFLOPs per step -> 3 steps
    run_dir, record = _run(tmp_path, f"{{dataset: shapes, budget: {{gflops: {budget}}}, recipe: paper, ema: 0.5, "
                                     "log_every: 2, limit: 8}", "first")
    t = record["train"]
    step = t["step_flops"]["flop"]
    assert step > 0 and t["step_flops"]["forward_passes"] == 1
    assert t["steps"] == int(budget * 1e9) // step >= 2  # the last whole step within the budget
    assert t["gflop_spent"] * 1e9 == pytest.approx(t["steps"] * step) and t["gflop_spent"] <= budget
    curve = t["loss_curve"]
    assert curve["step"][-1] == t["steps"] and len(curve["loss"]) == -(-t["steps"] // 2)
    assert all(np.isfinite(curve["loss"])) and t["duration_s"] > 0 and t["weights_after"] == "ema"
    assert t["recipe"]["source"].startswith("openai/improved-diffusion") and t["optim"]["ema"] == 0.5
    ckpt = checkpoint.read(run_dir / t["checkpoint"])
    assert ckpt.meta["step"] == t["steps"] and ckpt.meta["backend"] == "torch" and ckpt.ema is not None

    _, again = _run(tmp_path, f"{{dataset: shapes, budget: {{steps: 1}}, init: {run_dir / t['checkpoint']}, "
                              "limit: 8}", "second")
    assert again["train"]["init"] == {"path": str(run_dir / t["checkpoint"]), "step": t["steps"], "backend": "torch",
                                      "inner_depth": 0}
