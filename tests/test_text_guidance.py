"""Classifier-free guidance of a token-conditioned NestedUNet (mdm-tiny, cond_dim > 0): the null
text is zero tokens with a mask on the first position (bench/backends/null_text.py); the guided
prediction is (1 + w) cond - w null from two model calls; torch and Flax sample the same; a
guided step costs 2 NFEs; condition dropout in training feeds exactly the null. (Batched ==
two_calls for this nest: test_guidance.py's "nest" case.)"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from architectures import registry
from architectures.nested_unet.config import NestedUNetConfig
from bench import convert
from bench.backends import framework_free as host
from bench.backends import jax_adapter as jb
from bench.backends import null_text
from bench.backends import torch_adapter as tb

torch = pytest.importorskip("torch")
ENTRY = registry.get("nested_unet")
TINY = ENTRY.preset("mdm-tiny").config
W = 1.5


def _config(**process) -> NestedUNetConfig:
    return replace(TINY, process=replace(TINY.process, guidance_scale=W, sample_steps=4, **process))


def _built_pair(cfg):
    """torch weights moved off their init (the zero convs would hide the conditioning), the same
    weights in Flax."""
    t_built = tb.build(ENTRY, cfg, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in t_built.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    j_built = jb.build(ENTRY, cfg, seed=0, abstract=True)
    j_built.params = convert.torch_to_flax(t_built.model.state_dict(), j_built.params)
    j_built.abstract = False
    t_built.model.eval()
    return {"torch": (tb, t_built), "jax": (jb, j_built)}


@pytest.fixture(scope="module")
def pair():
    return _built_pair(_config())


def _inputs(batch: int = 2):
    arrays = host.random_inputs(TINY.input_shapes(batch), 4, 0)
    arrays["context_mask"][:, :2] = 1.0  # >= 2 real tokens: the null's one-token mask differs
    null_mask = np.zeros_like(arrays["context_mask"])
    null_mask[:, 0] = 1.0  # written out here, not taken from null_text.py
    arrays.update(null_context=np.zeros_like(arrays["context"]), null_mask=null_mask,
                  t=np.full((batch,), 0.4, np.float32))
    return arrays


def _call(adapter, built, a, context, mask, y=None):
    model = built.model if adapter is tb else built.params
    with torch.no_grad():
        out, _ = adapter.denoiser(built, model, a[context], context_mask=a[mask])(a["x"], a["t"], y, None)
    return out


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_guided_prediction_is_one_plus_w_cond_minus_w_null(pair, backend):
    adapter, built = pair[backend]
    a = adapter.device_arrays(built, _inputs())
    cond = [adapter.to_numpy(p) for p in _call(adapter, built, a, "context", "context_mask")]
    null = [adapter.to_numpy(p) for p in _call(adapter, built, a, "null_context", "null_mask")]
    denoise = adapter.denoiser(built, built.model if adapter is tb else built.params, a["context"],
                               context_mask=a["context_mask"])
    y, y_null = (adapter.device_arrays(built, {"y": v})["y"] for v in host.guidance_labels(built.config, None, 2))
    with torch.no_grad():
        guided = built.process.predict(denoise, a["x"], a["t"], y, y_null)
    for g, c, n in zip(guided, cond, null):
        assert np.abs(c - n).max() > 1e-3  # the text really changes the prediction
        np.testing.assert_allclose(adapter.to_numpy(g), (1 + W) * c - W * n, rtol=1e-5, atol=1e-5)


def test_torch_and_flax_guided_samplers_agree(pair):
    out = {}
    for name, (adapter, built) in pair.items():
        run = adapter.sampling_run(built, 2, seed=3, steps=3)
        step = adapter.make_sample_step(built, 2, seed=1, compile=False)
        assert run.nfe == 6 and step.nfe == 2  # 2 NFEs per guided step
        out[name] = [run.x[0], *(adapter.to_numpy(x) for x in adapter.sync(step.fn())[0])]
    for got, want in zip(out["jax"], out["torch"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_flop_accounting_counts_the_guided_pass():
    from bench.measure.flops import nfe_per_sample

    assert nfe_per_sample(_config(), ENTRY.process) == 8  # 4 guided steps
    assert nfe_per_sample(TINY, ENTRY.process) == TINY.process.sample_steps


@settings(deadline=None, max_examples=30)
@given(st.lists(st.booleans(), min_size=1, max_size=6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_null_text_replaces_exactly_the_dropped_rows(keep, length, seed):
    rng = np.random.default_rng(seed)
    context = rng.standard_normal((len(keep), length, 3)).astype(np.float32)
    mask = (rng.uniform(size=(len(keep), length)) < 0.5).astype(np.float32)
    tokens, got_mask = null_text.apply(context, mask, np.asarray(keep, np.float32))
    for i, k in enumerate(keep):
        want_mask = mask[i] if k else (np.arange(length) == 0).astype(np.float32)
        np.testing.assert_array_equal(tokens[i], context[i] if k else np.zeros_like(context[i]))
        np.testing.assert_array_equal(got_mask[i], want_mask)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_dropped_examples_see_exactly_the_null_text(pair, backend):
    """A call with keep flags [1, 0] (what training with cond_drop_prob and the guided batch pass as
    y) gives example 0 its tokens and example 1 the null, bit for bit."""
    adapter, built = pair[backend]
    a = adapter.device_arrays(built, {**_inputs(), "keep": np.array([1.0, 0.0], np.float32)})
    mixed = _call(adapter, built, a, "context", "context_mask", y=a["keep"])
    cond = _call(adapter, built, a, "context", "context_mask")
    null = _call(adapter, built, a, "null_context", "null_mask")
    for m, c, n in zip(mixed, cond, null):
        m, c, n = adapter.to_numpy(m), adapter.to_numpy(c), adapter.to_numpy(n)
        np.testing.assert_allclose(m[0], c[0], rtol=0, atol=1e-6)
        np.testing.assert_allclose(m[1], n[1], rtol=0, atol=1e-6)


def test_condition_dropout_in_training_draws_and_feeds_the_null():
    """cond_drop_prob: keep flags drawn after the process's other draws (t, eps unchanged); the
    training call sees the flags (tokens) or the null label num_classes (class labels)."""
    shape = (64, 32, 32, 3)
    plain = host.make_process(ENTRY, TINY).train_draws(np.random.default_rng(0), shape)
    dropping = host.make_process(ENTRY, _config(cond_drop_prob=0.25)).train_draws(np.random.default_rng(0), shape)
    assert "cond_keep" not in plain and np.array_equal(plain["t"], dropping["t"])
    assert 0 < (dropping["cond_keep"] == 0).sum() < 64 and set(np.unique(dropping["cond_keep"])) <= {0.0, 1.0}
    labelled = replace(TINY, cond_dim=0, cond_proj_dim=0, num_classes=10,
                       process=replace(TINY.process, cond_drop_prob=0.25))
    assert labelled.process.null_label == 10
    seen = []

    def spy(xs, time, y, latents):
        seen.append(y)
        return [x * 0 for x in xs], None

    keep, x0 = dropping["cond_keep"], np.zeros(shape, np.float32)
    for cfg, y, want in [(_config(cond_drop_prob=0.25), None, keep),
                         (labelled, np.arange(64) % 10, np.where(keep > 0, np.arange(64) % 10, 10))]:
        host.make_process(ENTRY, cfg).training_loss(spy, x0, dropping["t"], dropping["eps"], y, cond_keep=keep)
        np.testing.assert_array_equal(seen[-1], want)


def test_condition_dropout_needs_a_condition():
    with pytest.raises(ValueError, match="cond_drop_prob=0.1: the model has no condition"):
        replace(TINY, cond_dim=0, cond_proj_dim=0, process=replace(TINY.process, cond_drop_prob=0.1))
    with pytest.raises(ValueError, match=r"cond_drop_prob=1.0; allowed: \[0, 1\)"):
        replace(TINY.process, cond_drop_prob=1.0)


def test_a_guided_token_nest_runs_sample_step_and_quality_with_doubled_nfe(tmp_path):
    from bench import runner, suite_file

    suite = suite_file.loads("name: t\ncases:\n  - preset: mdm-tiny\n    measure: [sample_step, quality]\n"
                       "    threads: 1\n    rounds: 1\n"
                       "    override: {process: {guidance_scale: 1.5}}\n"
                       "    quality: {metrics: [kid], n: 4, steps: 2, batch: 2, dataset: shapes}\n")
    run_dir = runner.run_suite(suite, tmp_path)
    record = json.loads(next(p for p in sorted(run_dir.glob("*.json")) if p.name != "run.json").read_text())
    assert record["status"] == "ok", record.get("error")
    step = record["timing"]["sample_step"]
    assert step["nfe"] == 2 and step["guidance_mode"] == "batched"
    q = record["quality"]["sampling"]
    assert q["nfe"] == 4 and q["gflop_per_sample"] == pytest.approx(4 * q["gflop_per_image"])
