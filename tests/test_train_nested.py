"""The `train` measurement's data path for a multi-resolution, token-conditioned model
(NestedUNet mdm-tiny): the highest side from the dataset, one drawn token sequence and mask per
example, batches the process pools per resolution; a step of the torch Trainer takes them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from architectures import registry
from bench import backends
from bench.training.optim import OptimSpec
from bench.training.run import _batch, training_data

TRAIN = {"dataset": "shapes", "root": None, "limit": 16}


def test_nested_token_model_gets_highest_side_and_per_example_tokens():
    cfg = registry.get("nested_unet").preset("mdm-tiny").config
    x, y, context = training_data(TRAIN, cfg, seed=0)
    assert x.shape == (16, 32, 32, 3) and y is None
    assert set(context) == {"context", "context_mask"}
    assert context["context"].shape == (16, cfg.cond_tokens, cfg.cond_dim)
    mask = context["context_mask"]
    assert mask.shape == (16, cfg.cond_tokens) and np.all(mask[:, 0] == 1)  # >= 1 token each
    again = training_data(TRAIN, cfg, seed=0)[2]
    assert np.array_equal(again["context"], context["context"])  # seeded: both backends see the same


def test_a_torch_train_step_takes_the_nested_batch():
    adapter = backends.get("torch")
    entry = registry.get("nested_unet")
    built = adapter.build(entry, entry.preset("mdm-tiny").config, seed=0)
    x, y, context = training_data(TRAIN, built.config, seed=0)
    arrays = _batch(np.random.default_rng(0), x, y, context, 2, built.process)
    assert [e.shape for e in arrays["eps"]] == [(2, 32, 32, 3), (2, 16, 16, 3)]
    assert arrays["context"].shape[0] == arrays["context_mask"].shape[0] == 2
    trainer = adapter.Trainer(built, opt=OptimSpec(total_steps=1))
    a = adapter.device_arrays(built, {k: v for k, v in arrays.items() if v is not None})
    assert np.isfinite(float(trainer.step(a)))


def _inner(cfg, depth=1):
    """The smaller model of the nest: its levels[depth:], the process weights of those levels."""
    weights = cfg.process.weights[depth:] if cfg.process.weights else ()
    return replace(cfg, levels=cfg.levels[depth:], process=replace(cfg.process, weights=weights, resolutions=()))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_train_init_from_a_smaller_model_sets_the_inner_unet(backend, tmp_path):
    """`train.init` with a checkpoint of levels[1:] (a stage-1 model) sets the nest's inner U-Net to
    its weights, the outer level keeps its init (ml-mdm initialize_inner_with_pretrained); a
    checkpoint of the nest loads whole; one of another nest names the levels."""
    from bench.training import progressive
    from bench.training.checkpoint import CheckpointError
    from bench.training.run import _start_from

    adapter, entry = backends.get(backend), registry.get("nested_unet")
    cfg = entry.preset("mdm-tiny").config
    small = adapter.build(entry, _inner(cfg), seed=5)
    want = adapter.export_weights(small)
    nest = adapter.build(entry, cfg, seed=1)
    outer_before = adapter.export_weights(nest)["conv_in/weight"]
    ckpt, depth = _start_from(str(progressive.write_checkpoint(small, tmp_path / "s1")), "nested_unet", adapter, nest)
    got = adapter.export_weights(nest)
    assert depth == 1 and ckpt.meta["config"]["levels"][0]["resolution"] == 16
    inner = {k[len("inner/"):]: v for k, v in got.items() if k.startswith("inner/")}
    assert inner.keys() == want.keys() and all(np.array_equal(inner[k], want[k]) for k in want)
    np.testing.assert_array_equal(got["conv_in/weight"], outer_before)
    whole = adapter.build(entry, cfg, seed=2)
    assert _start_from(str(progressive.write_checkpoint(nest, tmp_path / "n")), "nested_unet", adapter, whole)[1] == 0
    assert all(np.array_equal(v, got[k]) for k, v in adapter.export_weights(whole).items())
    outer_only = replace(cfg, levels=cfg.levels[:1], process=replace(cfg.process, weights=(), resolutions=()))
    other = adapter.build(entry, outer_only, seed=0)
    with pytest.raises(CheckpointError, match="levels"):
        _start_from(str(progressive.write_checkpoint(other, tmp_path / "o")), "nested_unet", adapter,
                    adapter.build(entry, cfg, seed=1))



def test_quality_samples_and_reference_of_a_nest_are_its_highest_side():
    """The quality measurement scores a nest's highest-resolution output against real images of
    that side (drawn text tokens are conditioning, not frames)."""
    from bench.quality.measure import reference_data
    from bench.quality.sample import generate_samples
    from bench.quality.settings import QualitySettings

    adapter, entry = backends.get("torch"), registry.get("nested_unet")
    built = adapter.build(entry, entry.preset("mdm-tiny").config, seed=0)
    real = reference_data(QualitySettings(n=2, dataset="shapes"), built.config, 0, 4)
    samples, info = generate_samples(adapter, built, 3, 2, steps=2)
    assert real.shape == (4, 32, 32, 3) and samples.shape == (3, 32, 32, 3) and samples.dtype == np.uint8
    assert info["nfe"] == 2
