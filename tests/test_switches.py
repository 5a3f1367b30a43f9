"""The utilization switches as case settings (docs/precision.md): fused AdamW (torch), buffer
donation (jax), checked at load, recorded, and the same numbers as without them."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import tests.precision_arch  # noqa: F401  (registers precision-tiny)
from architectures import registry
from bench import suite_file
from bench.backends import jax_adapter as jb
from bench.backends import torch_adapter as tb

ENTRY = registry.get("precision-tiny")
CONFIG = ENTRY.preset("precision-tiny").config


def _torch_weights_after(fused: bool, steps: int = 2):
    built = tb.build(ENTRY, CONFIG, seed=0, fused_adamw=fused)
    step = tb.make_train_step(built, 2, seed=0)
    for _ in range(steps):
        tb.sync(step.fn())
    return built, {k: v.detach().clone() for k, v in built.model.state_dict().items()}


def test_fused_adamw_is_used_recorded_and_matches_the_default():
    built, fused = _torch_weights_after(True)
    assert built.policy.describe()["fused_adamw"] is True
    opt = tb.make_optimizer(built)
    assert opt.defaults["fused"] is True
    _, plain = _torch_weights_after(False)
    assert tb.make_optimizer(tb.build(ENTRY, CONFIG, seed=0)).defaults["fused"] is None  # torch's default
    for k in plain:
        torch.testing.assert_close(fused[k], plain[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(v, tb.build(ENTRY, CONFIG, seed=0).model.state_dict()[k]) for k, v in plain.items())


def test_jax_model_keeps_usable_weights_after_a_donating_train_step():
    """Donation invalidates the buffers passed in; the built model must hold the new ones (a later
    sampling run, e.g. the quality measurement, failed with 'Array has been deleted')."""
    built = jb.build(ENTRY, CONFIG, seed=0)
    before = jax.tree.leaves(built.params)[0]
    step = jb.make_train_step(built, 2, seed=0)
    jb.sync(step.fn())
    assert before.is_deleted()  # donated (XLA:CPU donates too)
    assert all(not leaf.is_deleted() for leaf in jax.tree.leaves(built.params))
    x = jb.generate(built, 2, steps=2)
    assert np.isfinite(x).all()
    assert built.policy.describe()["donate"] is True


def test_jax_without_donation_keeps_the_input_buffers_and_the_same_update():
    a = jb.build(ENTRY, CONFIG, seed=0, donate=False)
    b = jb.build(ENTRY, CONFIG, seed=0)
    kept = jax.tree.leaves(a.params)[0]
    for built in (a, b):
        jb.sync(jb.make_train_step(built, 2, seed=0).fn())
    assert not kept.is_deleted() and a.policy.describe()["donate"] is False
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("setting,allowed", [
    ("{backend: jax, fused_adamw: true}", "false with backend jax"),
    ("{donate: false}", "true with backend torch"),
    ("{fused_adamw: 1}", "true or false"),
    ("{device: cuda, attention: flash}", "bf16, fp16 or bf16-pure with attention 'flash'"),
    ("{device: cuda, attention: flash, precision: tf32}", "bf16, fp16 or bf16-pure with attention 'flash'"),
])
def test_switches_that_cannot_run_are_rejected_at_load(setting, allowed):
    with pytest.raises(suite_file.SpecError) as info:
        suite_file.loads(f"cases: [{{preset: unet2d-tiny, {setting[1:-1]}}}]", "s.yaml")
    assert allowed in str(info.value) and "\n" not in str(info.value)


def test_switches_name_their_cases():
    suite = suite_file.loads("cases:\n - {preset: unet2d-tiny, backend: jax, matrix: {donate: [true, false]}}\n"
                       " - {preset: unet2d-tiny, matrix: {fused_adamw: [false, true]}}\n"
                       " - {preset: unet2d-tiny, device: cuda, precision: bf16, attention: flash}\n")
    ids = [c.id for c in suite.cases]
    assert len(set(ids)) == 5
    assert ids[1].endswith("no-donate") and ids[3].endswith("fused-adamw") and "sdpa-flash" in ids[4]
