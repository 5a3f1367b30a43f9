"""A trained tiny model scores clearly better than its untrained initialization on the offline
proxies (the smallest case: unet2d-tiny, torch, CPU, built-in shapes), both far above the floor."""
import numpy as np
import pytest

from architectures import registry
from bench import backends
from bench.data import builtin
from bench.quality import features, metrics, sample
from tests.shape_data import for_shapes

N, STEPS, BATCH = 64, 150, 16


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core machine one intra-op thread is several times faster than two."""
    import torch
    before = torch.get_num_threads()
    backends.get("torch").set_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_trained_beats_untrained_on_fd_effnet_and_kid(one_torch_thread):
    adapter = backends.get("torch")
    entry = registry.get("unet2d")
    cfg = entry.preset("unet2d-tiny").config
    built = adapter.build(entry, cfg, seed=0)
    x, y, _ = for_shapes(cfg.input_shapes(512)["x"][0], cfg.num_classes, seed=0)
    ref = features.to_uint8(builtin.shapes(2 * N, 16, 3, seed=123)[0])  # disjoint from the training draw
    ex = {"effnet": features.effnet_images()}

    def score():
        s, _ = sample.generate_samples(adapter, built, N, 32, steps=20, seed=1)
        return {r["metric"]: r for r in metrics.score(s, ref, ["fd-effnet", "kid"], extractors=ex)}

    untrained = score()
    trainer, rng = adapter.Trainer(built, lr=1e-3), np.random.default_rng(0)
    for _ in range(STEPS):
        idx = rng.choice(len(x), BATCH, replace=False)
        arrays = {"x0": x[idx], "y": y[idx], **built.process.train_draws(rng, (BATCH, *x.shape[1:]))}
        trainer.step(adapter.device_arrays(built, arrays))
    trained = score()
    for m in ("fd-effnet", "kid"):
        assert trained[m]["value"] < 0.95 * untrained[m]["value"], (m, trained[m]["value"], untrained[m]["value"])
        assert trained[m]["value"] > trained[m]["floor"]
    assert trained["kid"]["value"] < untrained["kid"]["value"] - 3 * untrained["kid"]["std"] / np.sqrt(100)
