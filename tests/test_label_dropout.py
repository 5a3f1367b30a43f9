"""Class-label dropout for classifier-free guidance training (`process.cond_drop_prob`, Ho & Salimans
2022 Sec. 3.2) in the gaussian process: DiT's LabelEmbedder.token_drop, for every family whose
process is gaussian (RIN, ADM U-Net, SongUNet, DiT). Text tokens: tests/test_text_guidance.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from architectures import registry
from architectures.processes.gaussian import GaussianProcess

FAMILIES = {"rin": "rin-tiny", "unet2d": "unet2d-tiny", "songunet": "songunet-tiny", "dit": "dit-tiny"}


def _config(family: str, **process):
    cfg = registry.get(family).preset(FAMILIES[family]).config
    return dataclasses.replace(cfg, process=dataclasses.replace(cfg.process, **process)) if process else cfg


def _labelled(family: str, classes: int = 10, **process):
    cfg = _config(family)
    return dataclasses.replace(cfg, num_classes=classes, process=dataclasses.replace(cfg.process, **process))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_null_label_is_the_models_and_an_unconditional_model_refuses_dropout(family):
    cfg = _labelled(family, classes=7, cond_drop_prob=0.2)
    assert cfg.process.null_label == 7 and cfg.process.cond_drop_prob == 0.2
    with pytest.raises(ValueError, match=r"cond_drop_prob=0.2: the model has no condition to drop .*allowed: 0"):
        dataclasses.replace(cfg, num_classes=0)
    plain = dataclasses.replace(cfg, num_classes=0, process=dataclasses.replace(cfg.process, cond_drop_prob=0.0))
    assert plain.process.null_label == -1


def test_dit_presets_drop_labels_as_the_official_trainer():
    """facebookresearch/DiT models.py: DiT(class_dropout_prob=0.1) for every model; guided-diffusion (ADM)
    and RIN's presets train without it."""
    for preset in registry.get("dit").load_presets().values():
        assert preset.config.process.cond_drop_prob == 0.1 and preset.config.process.null_label == preset.config.num_classes
    assert _config("unet2d").process.cond_drop_prob == 0.0 and _config("rin").process.cond_drop_prob == 0.0
    with pytest.raises(ValueError, match=r"cond_drop_prob=1.5; allowed: \[0, 1\)"):
        _labelled("dit", cond_drop_prob=1.5)


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_flags_are_drawn_last_and_are_bernoulli(p, seed):
    """Without dropout the draws are as before (cond_keep comes last), and the kept fraction is 1 - p
    within 5 standard deviations."""
    shape, b = (4096, 8, 8, 4), 4096
    plain = GaussianProcess(_config("dit").process).train_draws(np.random.default_rng(seed), shape)
    dropping = GaussianProcess(_labelled("dit", cond_drop_prob=p).process).train_draws(np.random.default_rng(seed), shape)
    for key in ("t", "eps", "keep"):
        np.testing.assert_array_equal(plain[key], dropping[key])
    flags = dropping["cond_keep"]
    assert flags.shape == (b,) and set(np.unique(flags)) <= {0.0, 1.0}
    assert abs(flags.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / b)
    assert "cond_keep" not in GaussianProcess(_labelled("dit", cond_drop_prob=0.0).process).train_draws(
        np.random.default_rng(seed), shape)


def test_every_pass_sees_the_null_label_where_dropped():
    """RIN's self-conditioning: pass 1 and pass 2 both see the dropped labels; the loss equals the
    loss of the same batch relabelled by hand (no dropout), and differs from the undropped one."""
    cfg = _labelled("rin", classes=5, cond_drop_prob=0.5, self_condition_rate=1.0)
    process = GaussianProcess(cfg.process)
    rng = np.random.default_rng(0)
    b = 16
    x0 = rng.uniform(-1, 1, (b, 4, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, b).astype(np.int32)
    draws = process.train_draws(np.random.default_rng(1), x0.shape)
    cond_keep = draws.pop("cond_keep")
    assert 0 < cond_keep.sum() < b
    seen = []

    def denoise(x, time, labels, latents):
        seen.append(np.asarray(labels))
        shift = np.asarray(labels, np.float32)[:, None, None, None] * 0.1
        return x * 0.5 + shift, np.ones_like(latents) * shift.reshape(b, 1)

    latents = np.zeros((b, 6), np.float32)
    loss = process.training_loss(denoise, x0, y=y, latents=latents, cond_keep=cond_keep, **draws)
    want = np.where(cond_keep > 0, y, 5)
    assert len(seen) == 2 and all(np.array_equal(s, want) for s in seen)
    by_hand = process.training_loss(denoise, x0, y=want, latents=latents, **draws)
    undropped = process.training_loss(denoise, x0, y=y, latents=latents, **draws)
    assert float(loss) == float(by_hand) and float(loss) != float(undropped)


def test_a_process_without_its_models_null_label_refuses_to_drop():
    """A plugin config that keeps a GaussianConfig but never calls with_null_label: an error, not
    labels silently set to -1 (which jax would wrap to the table's last row)."""
    from architectures.processes.config import GaussianConfig

    process = GaussianProcess(GaussianConfig(cond_drop_prob=0.5))
    x0 = np.zeros((4, 2, 2, 3), np.float32)
    draws = process.train_draws(np.random.default_rng(0), x0.shape)
    with pytest.raises(ValueError, match="label dropout needs process.null_label"):
        process.training_loss(lambda x, t, y, latents: (x, None), x0, y=np.arange(4), **draws)
