"""Classifier-free guidance in both backends: the batched call (one network call of batch 2B, as
DiT's official forward_with_cfg) gives the numbers of the two-call form, with the same NFE
accounting; DiT's presets guide only the first three eps channels, as its official sampler."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from architectures import registry
from bench import backends
from bench.convert import torch_to_flax

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
ADAPTERS = {"torch": backends.get("torch"), "jax": backends.get("jax")}


def _config(case: str, **process):
    """dit-tiny (learned variance, 3 guided channels), RIN with latents, a RIN video model
    whose context frames must follow x into the batch-2B call, and a token-conditioned nest
    (mdm-tiny: [tokens; null text], bench/backends/null_text.py)."""
    if case == "nest":
        cfg = registry.get("nested_unet").preset("mdm-tiny").config
        return "nested_unet", dataclasses.replace(cfg, process=dataclasses.replace(cfg.process, **process))
    if case == "dit":
        cfg = registry.get("dit").preset("dit-tiny").config
        return "dit", dataclasses.replace(cfg, depth=1, process=dataclasses.replace(cfg.process, **process))
    cfg = registry.get("rin").preset("rin-tiny").config
    video = dict(frames=3, cond_frames=1) if case == "rin-video" else {}
    return "rin", dataclasses.replace(cfg, num_blocks=1, **video, process=dataclasses.replace(cfg.process, **process))


def _perturbed(adapter, entry, cfg):
    """Weights moved off their init (DiT's zero-init output and adaLN layers would make every label
    give the same output): torch weights + N(0, 0.05), transferred to Flax for the jax adapter."""
    t_built = ADAPTERS["torch"].build(entry, cfg, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in t_built.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    if adapter is ADAPTERS["torch"]:
        return t_built
    built = adapter.build(entry, cfg, seed=0, abstract=True)
    built.params = torch_to_flax(t_built.model.state_dict(), built.params)
    built.abstract = False
    return built


# The nest runs in torch only: its Flax sampler's agreement with torch is test_text_guidance.py's.
PAIRS = [(b, c) for c in ("dit", "rin", "rin-video") for b in ("torch", "jax")] + [("torch", "nest")]


@pytest.mark.parametrize("backend, case", PAIRS, ids=[f"{c}-{b}" for b, c in PAIRS])
def test_batched_guidance_equals_two_calls(backend, case):
    a, outs = ADAPTERS[backend], {}
    for mode in ("batched", "two_calls"):
        arch, cfg = _config(case, guidance_scale=1.5, guidance_mode=mode, sample_steps=4, sampler="ddpm")
        built = _perturbed(a, registry.get(arch), cfg)
        step = a.make_sample_step(built, 3, seed=1, compile=False)
        shapes = cfg.input_shapes(2)
        context = np.random.default_rng(3).uniform(-1, 1, shapes["context"][0]) if "context" in shapes else None
        run = a.sampling_run(built, 2, seed=2, steps=2, context=context)
        assert step.nfe == 2 and run.nfe == 4, mode  # 2 NFEs per guided step, either way
        outs[mode] = [a.to_numpy(o) for o in a.sync(step.fn()) if o is not None] + [run.x]
    assert len(outs["batched"]) == (3 if arch == "rin" else 2)  # RIN: the conditional half's latents too
    for got, want in zip(outs["batched"], outs["two_calls"]):
        for g, w in zip(*((x if isinstance(x, list) else [x]) for x in (got, want))):  # a nest: per resolution
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_dit_guides_only_the_first_three_eps_channels(backend):
    """DiT's forward_with_cfg: eps[:, :3] = u + s (c - u), s = 1 + w; eps channel 3 and the
    variance come from the conditional half. Checked against that formula on the raw network output."""
    a, w = ADAPTERS[backend], 2.0
    arch, cfg = _config("dit", guidance_scale=w)
    assert registry.get("dit").preset("dit-xl-2").config.process.guided_channels == 3  # every DiT preset
    built = _perturbed(a, registry.get(arch), cfg)
    b, null = 2, cfg.num_classes
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, cfg.input_size, cfg.input_size, cfg.in_channels)).astype(np.float32)
    arrays = a.device_arrays(built, {"x": x, "y": np.array([1, 7], np.int32),
                                     "y2": np.array([1, 7, null, null], np.int32)})
    model = built.model if backend == "torch" else built.params
    denoise = a.denoiser(built, model)
    t = np.full((b,), 500.0, np.float32)
    xp = torch if backend == "torch" else jax.numpy
    if backend == "torch":
        built.model.eval()
    t, t2 = xp.asarray(t), xp.asarray(np.concatenate([t, t]))
    with torch.no_grad():
        x2 = xp.concatenate([arrays["x"], arrays["x"]])
        (eps, v), _ = denoise(x2, t2, arrays["y2"], None)  # the raw batch-2B network output
        (guided, v_guided), _ = built.process.predict(denoise, arrays["x"], t, arrays["y"], None,
                                                      y_null=arrays["y2"][b:])
    eps, v, guided, v_guided = (a.to_numpy(o) for o in (eps, v, guided, v_guided))  # channels-last
    cond, uncond = eps[:b], eps[b:]
    want = cond.copy()
    want[..., :3] = uncond[..., :3] + (1.0 + w) * (cond[..., :3] - uncond[..., :3])
    np.testing.assert_allclose(guided, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v_guided, v[:b], rtol=1e-5, atol=1e-6)
    all_channels = uncond + (1.0 + w) * (cond - uncond)
    assert np.abs(guided[..., 3] - all_channels[..., 3]).max() > 1e-3  # channel 3 really is left unguided


def test_guidance_mode_is_checked_when_the_suite_loads():
    from bench import suite_file

    text = "name: g\ncases:\n  - preset: dit-tiny\n    override: {process: {guidance_scale: 1.5, guidance_mode: %s}}\n"
    case = suite_file.loads(text % "two_calls").cases[0]
    assert suite_file.resolve_config(case).process.guidance_mode == "two_calls"
    with pytest.raises(suite_file.SpecError, match=r"cases\[0\]\.override\.process: .*guidance_mode='once'; "
                                             r"allowed: \['batched', 'two_calls'\]"):
        suite_file.loads(text % "once")
