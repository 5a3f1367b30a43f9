"""Training math against closed forms and optax: lr schedule, LAMB (torch vs optax.lamb, and
Algorithm 2 of You et al. 2020 by hand), clipping, EMA, the full update sequence torch vs jax,
FLOP budgets, and the `train:` schema's errors."""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bench.backends import framework_free
from bench.backends import jax_adapter as jb
from bench.backends import torch_adapter as tb
from bench.strict_yaml import SpecError
from bench.training.lamb_torch import LAMB
from bench.training.optim import OptimSpec
from bench.training.run import steps_for_budget
from bench import suite_file


# -- schedule ------------------------------------------------------------------------------------
def closed_form(s, lr, w, total, f, a, kind):
    if s < w:
        return lr * s / w
    if kind == "constant":
        return lr
    d = (total - w) / f
    return lr * ((1 - a) * 0.5 * (1 + np.cos(np.pi * min(s - w, d) / d)) + a)


@pytest.mark.parametrize("kind,w,total,f,a", [("cosine", 10, 100, 1.0, 0.0), ("cosine", 10, 100, 0.8, 0.0),
                                              ("cosine", 0, 50, 0.7, 0.1), ("constant", 5, 20, 1.0, 0.0)])
def test_schedule_matches_the_closed_form_in_python_and_jax(kind, w, total, f, a):
    opt = OptimSpec(lr=3e-3, warmup=w, total_steps=total, cosine_fraction=f, end_lr_factor=a, schedule=kind)
    steps = np.arange(total + 5)
    want = np.array([closed_form(s, 3e-3, w, total, f, a, kind) for s in steps])
    np.testing.assert_allclose([opt.learning_rate(int(s)) for s in steps], want, rtol=1e-12, atol=1e-15)
    got = jax.vmap(lambda s: opt.learning_rate(s, jnp))(jnp.asarray(steps))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-10)
    assert opt.learning_rate(0) == (0.0 if w else 3e-3) and opt.learning_rate(w) == pytest.approx(3e-3)
    if kind == "cosine" and f == 0.8:  # pix2seq's cosine@0.8 ends at 0.5 * (1 + cos(0.8 pi)) = 9.5% of lr
        assert opt.learning_rate(total) == pytest.approx(3e-3 * 0.5 * (1 + math.cos(0.8 * math.pi)))


# -- EMA -----------------------------------------------------------------------------------------
def test_ema_update_is_the_closed_form_in_both_backends():
    d, rng = 0.9, np.random.default_rng(0)
    e0, ps = rng.standard_normal(5), rng.standard_normal((7, 5))
    n = len(ps)
    want = d**n * e0 + sum((1 - d) * d ** (n - 1 - k) * ps[k] for k in range(n))
    te, je = {"w": torch.tensor(e0)}, {"w": jnp.asarray(e0, jnp.float32)}
    for p in ps:
        tb.ema_update(te, {"w": torch.tensor(p)}, d)
        je = jb.ema_update(je, {"w": jnp.asarray(p, jnp.float32)}, d)
    np.testing.assert_allclose(te["w"].numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(je["w"]), want, rtol=1e-5)


# -- LAMB ----------------------------------------------------------------------------------------
def _params(rng):
    return {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3), "z": np.zeros((2, 2))}


def test_torch_lamb_first_step_is_algorithm_2():
    """Step 1 of You et al. 2020 Alg. 2: m_hat = g, v_hat = g^2, u = g / (|g| + eps) + wd * w,
    w -= lr * ||w|| / ||u|| * u."""
    rng = np.random.default_rng(1)
    w, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    p = torch.nn.Parameter(torch.tensor(w))
    opt = LAMB([p], lr=0.1, eps=1e-6, weight_decay=0.01)
    p.grad = torch.tensor(g)
    opt.step()
    u = g / (np.abs(g) + 1e-6) + 0.01 * w
    np.testing.assert_allclose(p.detach().numpy(), w - 0.1 * np.linalg.norm(w) / np.linalg.norm(u) * u, rtol=1e-12)


def test_torch_lamb_matches_optax_lamb_on_the_same_gradients():
    rng = np.random.default_rng(2)
    start = _params(rng)
    tparams = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in start.items()}
    mats = [tparams[k] for k in start if start[k].ndim > 1]
    opt = LAMB([{"params": mats, "weight_decay": 0.01}, {"params": [tparams["b"]], "weight_decay": 0.0}],
               lr=0.05, betas=(0.9, 0.99), eps=1e-6)
    ref = optax.lamb(0.05, b1=0.9, b2=0.99, eps=1e-6, weight_decay=0.01,
                     mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    jparams = {k: jnp.asarray(v) for k, v in start.items()}
    state = ref.init(jparams)
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in start.items()}
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k])
        opt.step()
        updates, state = ref.update({k: jnp.asarray(v) for k, v in grads.items()}, state, jparams)
        jparams = optax.apply_updates(jparams, updates)
    for k in start:
        np.testing.assert_allclose(tparams[k].detach().numpy(), np.asarray(jparams[k]), rtol=2e-5, atol=1e-6)
    assert not np.allclose(tparams["z"].detach().numpy(), 0)  # a zero tensor moves: trust ratio 1, not 0


# -- the whole update: lr schedule + clipping + optimizer + EMA, torch vs jax -------------------------
def _torch_trainer(start, opt):
    module = torch.nn.Module()
    for k, v in start.items():
        setattr(module, k, torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)))
    config = types.SimpleNamespace(input_shapes=lambda batch: {})
    return tb.Trainer(framework_free.Built("torch", None, config, module, None, "cpu", None, 0), opt=opt)


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_update_sequence_is_the_same_in_both_backends(optimizer):
    """Warmup + cosine, clipping (one huge gradient), weight decay, EMA: 6 steps on the same gradients."""
    opt = OptimSpec(optimizer=optimizer, lr=0.05, weight_decay=0.01, schedule="cosine", warmup=2, total_steps=6,
                    cosine_fraction=0.8, clip=1.0, ema=0.9)
    rng = np.random.default_rng(3)
    start = {k: v.astype(np.float32) for k, v in _params(rng).items()}
    trainer = _torch_trainer(start, opt)
    tx = jb.make_optimizer(None, opt)
    params = {k: jnp.asarray(v) for k, v in start.items()}
    state, ema = tx.init(params), params
    for step in range(6):
        grads = {k: (100.0 if step == 3 else 0.3) * rng.standard_normal(v.shape).astype(np.float32)
                 for k, v in start.items()}
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.apply(sum((p * torch.tensor(grads[k])).sum() for k, p in trainer.params.items()))  # grad = g
        updates, state = tx.update({k: jnp.asarray(v) for k, v in grads.items()}, state, params)
        params = optax.apply_updates(params, updates)
        ema = jb.ema_update(ema, params, opt.ema)
    for k in start:
        np.testing.assert_allclose(trainer.params[k].detach().numpy(), np.asarray(params[k]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(trainer.ema[k].numpy(), np.asarray(ema[k]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(trainer.params["w"].detach().numpy(), start["w"])


def test_clipping_is_optax_clip_by_global_norm():
    rng = np.random.default_rng(4)
    grads = {"a": rng.standard_normal((3, 3)), "b": rng.standard_normal(3)}
    norm = np.sqrt(sum((g**2).sum() for g in grads.values()))
    for max_norm in (norm / 3, norm * 2):
        ps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads.values()]
        for p, g in zip(ps, grads.values()):
            p.grad = torch.tensor(g)
        assert float(tb.clip_global_norm(ps, max_norm)) == pytest.approx(norm)
        want, _ = optax.clip_by_global_norm(max_norm).update({k: jnp.asarray(v) for k, v in grads.items()}, None)
        for p, k in zip(ps, grads):
            np.testing.assert_allclose(p.grad.numpy(), np.asarray(want[k]), rtol=1e-6)
        got = np.sqrt(sum(float((p.grad**2).sum()) for p in ps))
        assert got == pytest.approx(min(norm, max_norm), rel=1e-6)


# -- budgets -------------------------------------------------------------------------------------
@pytest.mark.parametrize("step_flops", [7, 104_309_248, 999_999_937])
def test_a_flop_budget_stops_at_the_last_whole_step_within_it(step_flops):
    for k in (1, 2, 5, 37):
        for extra in (0, 1, step_flops - 1):
            budget = (k * step_flops + extra) / 1e9
            steps = steps_for_budget({"gflops": budget}, step_flops)
            assert steps == k, (k, extra)
            assert steps * step_flops <= round(budget * 1e9) < (steps + 1) * step_flops
    with pytest.raises(ValueError, match="below one training step"):
        steps_for_budget({"gflops": (step_flops - 1) / 1e9}, step_flops)
    assert steps_for_budget({"steps": 12}, None) == 12


@given(st.integers(1, 10**13), st.integers(1, 10**15))
def test_a_flop_budget_never_overspends_and_never_leaves_a_whole_step_unused(step_flops, budget_flops):
    if budget_flops < step_flops:
        return
    steps = steps_for_budget({"gflops": budget_flops / 1e9}, step_flops)
    spent_budget = round(budget_flops / 1e9 * 1e9)  # the budget as the run sees it (float GFLOPs)
    assert steps * step_flops <= spent_budget < (steps + 1) * step_flops


# -- the schema ----------------------------------------------------------------------------------
SUITE = "name: t\ncases:\n  - preset: {preset}\n    measure: [{measure}]\n    train: {train}\n"


def _load(train, measure="train", preset="rin-tiny"):
    return suite_file.loads(SUITE.format(train=train, measure=measure, preset=preset), source="s.yaml")


@pytest.mark.parametrize("train,where,allowed", [
    ("{dataset: shapes, budget: {steps: 5}, optimiser: lamb}", "cases[0].train.optimiser", "optimizer"),
    ("{dataset: shapes, budget: {steps: 5}, lr: fast}", "cases[0].train.lr", "a number > 0"),
    ("{dataset: shapes, budget: {steps: 0}}", "cases[0].train.budget.steps", "an integer in [1,"),
    ("{dataset: shapes, budget: {steps: 5, gflops: 1.0}}", "cases[0].train.budget", "gflops"),
    ("{dataset: shapes, budget: {steps: 5}, optimizer: sgd}", "cases[0].train.optimizer", "lamb"),
    ("{dataset: nowhere, budget: {steps: 5}}", "cases[0].train.dataset", "shapes"),
    ("{budget: {steps: 5}}", "cases[0].train", "missing key 'dataset'"),
    ("{dataset: shapes, budget: {steps: 5}, warmup: 2, warmup_fraction: 0.1}", "cases[0].train.warmup_fraction",
     "one of them"),
    ("{dataset: shapes, budget: {steps: 50}, recipe: paper}", "cases[0].train", "warms up over 10000 steps"),
    ("{dataset: shapes, budget: {steps: 5}, init: /nonexistent/ckpt}", "cases[0].train.init", "no diffbench checkpoint"),
    ("{dataset: shapes, budget: {steps: 5}, eval_every: 0}", "cases[0].train.eval_every", "an integer number of steps"),
    ("{dataset: shapes, budget: {steps: 5}, eval_at: [0.5, 1.5]}", "cases[0].train.eval_at", "fractions of the budget"),
    ("{dataset: shapes, budget: {steps: 5}, eval_at: [0.5], eval_every: 2}", "cases[0].train.eval_at", "one of them"),
    ("{dataset: shapes, budget: {steps: 5}, eval_every: 2}", "cases[0].train.eval_every", "measure listing 'quality'"),
])
def test_bad_train_mappings_are_one_error_naming_the_key(train, where, allowed):
    with pytest.raises(SpecError) as err:
        _load(train)
    assert str(err.value).startswith(f"s.yaml: {where}:") and allowed in str(err.value)
    assert "\n" not in str(err.value)


def test_train_and_the_train_measurement_go_together_and_resolve_with_the_recipe():
    with pytest.raises(SpecError, match="measure lists 'train' but the case has no"):
        suite_file.loads("name: t\ncases:\n  - preset: rin-tiny\n    measure: [train]\n", source="s.yaml")
    with pytest.raises(SpecError, match="measure does not list 'train'"):
        _load("{dataset: shapes, budget: {steps: 5}}", measure="params")
    case = _load("{dataset: shapes, budget: {steps: 50}, recipe: paper, warmup_fraction: 0.1, lr: 1.0e-3}").cases[0]
    assert case.train["recipe"] == "paper" and "/tr" in case.id
    assert type(case).from_dict(case.to_dict()) == case
    from architectures import registry
    from bench.training.recipes import find_recipe
    from bench.training.spec import resolve

    opt, changed = resolve(case.train.to_dict(), find_recipe(registry.get("rin"), "rin-cifar10"), 50)
    assert (opt.optimizer, opt.lr, opt.warmup, opt.ema, opt.cosine_fraction) == ("lamb", 1e-3, 5, 0.9999, 0.8)
    assert changed == {"lr": 1e-3, "warmup": 5}


# -- recipes ---------------------------------------------------------------------------------------
def test_every_registered_recipe_is_valid_and_cites_its_source():
    import dataclasses

    from architectures import registry
    from bench.training.recipes import RecipeError, find_recipe

    checked = 0
    for entry in registry.entries():
        if not entry.recipes:
            continue
        for preset in entry.load_presets():
            recipe = find_recipe(entry, preset)  # validates the fields through OptimSpec
            assert recipe.source and recipe.optim["optimizer"] in ("adamw", "lamb")
            checked += 1
    assert checked >= 10
    rin = find_recipe(registry.get("rin"), "rin-cifar10")
    assert (rin.optim["optimizer"], rin.optim["lr"], rin.optim["warmup"], rin.optim["ema"]) == ("lamb", 3e-3, 10_000, 0.9999)
    adm = find_recipe(registry.get("unet2d"), "adm-imagenet64")
    assert (adm.optim["optimizer"], adm.optim["lr"], adm.optim["schedule"], adm.optim["weight_decay"]) == \
        ("adamw", 3e-4, "constant", 0.0)
    with pytest.raises(RecipeError, match="declares no paper recipes"):
        find_recipe(dataclasses.replace(registry.get("rin"), recipes=""), "rin-tiny")


def test_loading_a_train_suite_imports_neither_torch_nor_jax():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from bench import suite_file; from bench.plan import format_plan; s = suite_file.load('suites/train-tiny.yaml'); format_plan(s); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'jax', 'flax'}))")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_learning_curve_points_and_case_ids_without_them_unchanged():
    from bench.training.spec import eval_steps

    plain = _load("{dataset: shapes, budget: {steps: 10}}").cases[0]
    assert "eval_every" not in plain.train and "eval_at" not in plain.train  # ids of existing cases stay
    curve = _load("{dataset: shapes, budget: {steps: 10}, eval_at: [0.5, 0, 1.0]}", measure="train, quality").cases[0]
    assert curve.train["eval_at"] == (0, 0.5, 1.0) and curve.id != plain.id
    assert eval_steps(curve.train.to_dict(), 10) == [0, 5]  # the end is the case's own quality measurement
    assert eval_steps({"eval_every": 3}, 10) == [3, 6, 9] and eval_steps({"eval_every": 5}, 10) == [5]
    assert eval_steps({}, 10) == []
