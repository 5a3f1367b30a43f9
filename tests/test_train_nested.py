"""The `train` measurement's data path for a multi-resolution, token-conditioned model
(NestedUNet mdm-tiny): the highest side from the dataset, one drawn token sequence and mask per
example, batches the process pools per resolution; a step of the torch Trainer takes them."""

from __future__ import annotations

import numpy as np

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
