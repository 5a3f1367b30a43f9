"""NestedUNet (Matryoshka Diffusion) and the multi-resolution process: closed forms of the process
math against numpy, zero-adapter nesting, progressive init, and short training in both backends.
(Cross-backend parity and FLOP-counter agreement of mdm-tiny come from the registry-generated
tests: test_registry_models.py, test_flops.py.)"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from architectures import registry
from architectures.nested_unet.config import NestedUNetConfig
from architectures.processes import schedules
from architectures.processes.multires import MultiResProcess, avg_pool, shift_gamma
from architectures.processes.multires_config import MultiResConfig
from bench import convert
from bench.training import progressive
from bench.backends import framework_free
from bench.backends import jax_adapter as jb
from bench.backends import torch_adapter as tb

ENTRY = registry.get("nested_unet")
TINY = ENTRY.preset("mdm-tiny").config


def _official_gammas(steps: int = 1000) -> np.ndarray:
    """ml-mdm samplers.squaredcos_cap_v2, as a cumulative product of clipped betas (float64)."""
    abar = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = [0.0] + [min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999) for i in range(steps)]
    return np.exp(np.cumsum(np.log(1.0 - np.asarray(betas))))


def test_discrete_cosine_schedule_equals_the_official_product():
    k = np.arange(1001, dtype=np.float64)
    np.testing.assert_allclose(schedules.cosine_discrete(k / 1000), _official_gammas(), rtol=1e-9, atol=0)


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 4), st.integers(1, 3), st.sampled_from([0.0, 1.0, 2.0, 1.5]), st.floats(1e-4, 1 - 1e-4))
def test_schedule_shift_divides_snr_by_scale_power(lowest_log2, levels, power, gamma):
    """SNR_r = SNR / s^p with s = side / lowest side (Gu et al. 2024, Sec. 3.2); the closed form is
    ml-mdm's samplers.get_schedule_shifted: 1 / (1 + 1 / (snr / scale^schedule_shifted_power)), its
    scales the nest ratios to the lowest side (diffusion.NestedDiffusion.get_loss)."""
    sides = tuple(2 ** (lowest_log2 + 2 * i) for i in reversed(range(levels)))
    process = MultiResProcess(MultiResConfig(shift_power=power, resolutions=sides))
    t = np.array([0.3])
    g = process.gamma(t)
    for side, g_r in zip(sides, process.gammas(t, [None] * levels)):
        s = side / sides[-1]
        assert g_r / (1 - g_r) == pytest.approx(g / (1 - g) / s**power, rel=1e-9)
    g_shift = shift_gamma(np.array([gamma]), 4.0, power)
    assert 1 / (1 + 1 / (gamma / (1 - gamma) / 4.0**power)) == pytest.approx(float(g_shift[0]), rel=1e-9)


def test_avg_pool_any_layout_matches_reshape_mean():
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3))
    want = x.reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(avg_pool(x, (2, 2, 2, 3)), want)
    np.testing.assert_allclose(avg_pool(np.moveaxis(x, -1, 1), (2, 3, 2, 2)), np.moveaxis(want, -1, 1))


def _numpy_denoise(xs, time, y, latents):
    return [np.tanh(x) + time[:, None, None, None] for x in xs], None  # any fixed function of x_t and time


def test_training_loss_is_weighted_eps_mse_from_v():
    """Targets: pooled x0; one t for all resolutions; eps_hat = sqrt(1-g) x_t + sqrt(g) v; the sum
    over resolutions weighted as ml-mdm's NestedDiffusion.get_loss with multi_res_weights (w_i times
    each resolution's MSE, use_double_loss)."""
    process = MultiResProcess(MultiResConfig(resolutions=(8, 4), weights=(3.0, 0.5), shift_power=1.0))
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (2, 8, 8, 3))
    assert process.shapes((2, 8, 8, 3)) == [(2, 8, 8, 3), (2, 4, 4, 3)]  # from the data, either layout
    assert process.shapes((2, 3, 8, 8)) == [(2, 3, 8, 8), (2, 3, 4, 4)]
    draws = process.train_draws(rng, [(2, 8, 8, 3), (2, 4, 4, 3)])
    t, eps = draws["t"].astype(np.float64), draws["eps"]
    np.testing.assert_allclose(t * 1000, np.round(t * 1000), atol=1e-3)  # k / T, k in 1..T
    assert t.min() >= 1e-3 - 1e-9
    got = process.training_loss(_numpy_denoise, x0, t, [e.astype(np.float64) for e in eps])
    want = 0.0
    abar = _official_gammas()[np.round(t * 1000).astype(int)]
    for w, side, e in [(3.0, 8, eps[0]), (0.5, 4, eps[1])]:
        target = x0.reshape(2, side, 8 // side, side, 8 // side, 3).mean(axis=(2, 4))
        snr = abar / (1 - abar) / (side / 4)
        g = (snr / (1 + snr))[:, None, None, None]
        x_t = np.sqrt(g) * target + np.sqrt(1 - g) * e
        v = np.tanh(x_t) + (t - 1e-3)[:, None, None, None]
        want += w * np.mean((np.sqrt(1 - g) * x_t + np.sqrt(g) * v - e) ** 2)
    assert got == pytest.approx(want, rel=1e-6)


def test_sampler_step_is_the_official_posterior_step():
    """ml-mdm get_prediction_xt_last: mean = x0 beta sqrt(g')/(1-g) + x_t sqrt(alpha)(1-g')/(1-g),
    std sqrt(beta (1-g')/(1-g)), x0 clipped; timesteps as set_timesteps."""
    process = MultiResProcess(MultiResConfig(resolutions=(8, 4), sample_steps=250))
    ks = process.timesteps(250)
    assert ks == list(np.round(np.arange(251) * 1001 / 251)[::-1].astype(int))
    assert len(process.time_grid(1000)) == 1000 and process.timesteps(1000)[:2] == [1000, 999]
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 8, 8, 3)), rng.standard_normal((2, 4, 4, 3))]
    noise = [rng.standard_normal(x.shape) for x in xs]
    t, tn = np.full(2, 0.6), np.full(2, 0.596)
    out = process.sample_step(_numpy_denoise, xs, t, tn, noise=noise)
    for x, side, n, x_next in zip(xs, (8, 4), noise, out.x):
        shift = lambda a: (a / (1 - a) / (side / 4)) / (1 + a / (1 - a) / (side / 4))
        g, gl = shift(_official_gammas()[600]), shift(_official_gammas()[596])
        alpha, beta = g / gl, 1 - g / gl
        x0 = np.clip(np.sqrt(g) * x - np.sqrt(1 - g) * (np.tanh(x) + 0.599), -1, 1)
        mean = x0 * beta * np.sqrt(gl) / (1 - g) + x * np.sqrt(alpha) * (1 - gl) / (1 - g)
        np.testing.assert_allclose(x_next, mean + np.sqrt(beta * (1 - gl) / (1 - g)) * n, rtol=1e-6, atol=1e-9)


def test_guidance_mixes_every_resolution():
    process = MultiResProcess(MultiResConfig(resolutions=(8, 4), guidance_scale=2.0))
    denoise = lambda xs, time, y, latents: ([x * 0 + y[:, None, None, None] for x in xs], None)
    preds = process.predict(denoise, [np.zeros((2, 8, 8, 3)), np.zeros((2, 4, 4, 3))], np.ones(2), np.full(2, 5.0),
                            y_null=np.full(2, 1.0))
    assert [float(p.max()) for p in preds] == [3 * 5.0 - 2 * 1.0] * 2
    assert process.nfe_per_sample(True, 10) == 20


# -- models -------------------------------------------------------------------------------------
def _inner_config(cfg: NestedUNetConfig, depth: int = 1) -> NestedUNetConfig:
    weights = cfg.process.weights[depth:] if cfg.process.weights else ()
    return replace(cfg, levels=cfg.levels[depth:], process=replace(cfg.process, weights=weights, resolutions=()))


def _perturb(model, skip=("in_adapter", "out_adapter"), scale=0.05):
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not any(s in name for s in skip):
                p.add_(scale * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="module")
def trained_inner():
    """The small (16 px) model, perturbed off its init as a stand-in for training, and its weights file."""
    built = tb.build(ENTRY, _inner_config(TINY), seed=3)
    _perturb(built.model, skip=())
    return built


def test_fresh_nest_low_resolution_output_is_the_inner_model(trained_inner, tmp_path):
    """Zero adapters: the nest's 16 px output equals the small model's alone, in both backends,
    after progressive init from a checkpoint of the small model."""
    nest_t = tb.build(ENTRY, TINY, seed=0)
    _perturb(nest_t.model)  # every outer weight moved; the adapters stay zero (their init)
    progressive.load_inner(nest_t, progressive.write_checkpoint(trained_inner, tmp_path / "small"))
    arrays = framework_free.random_inputs(TINY.input_shapes(2), 7, 0)
    small = {**arrays, "x": arrays["x"][1:]}
    np.testing.assert_array_equal(_forward(tb, nest_t, arrays)[1], _forward(tb, trained_inner, small)[0])
    nest_j = jb.build(ENTRY, TINY, seed=0, abstract=True)
    nest_j.params = convert.torch_to_flax(nest_t.model.state_dict(), nest_j.params)
    small_j = jb.build(ENTRY, _inner_config(TINY), seed=0, abstract=True)
    small_j.params = convert.torch_to_flax(trained_inner.model.state_dict(), small_j.params)
    np.testing.assert_allclose(_forward(jb, nest_j, arrays)[1], _forward(jb, small_j, small)[0], rtol=0, atol=1e-5)


def _forward(adapter, built, arrays):
    a = adapter.device_arrays(built, arrays)
    if adapter is tb:
        built.model.eval()
        with torch.no_grad():
            out, _ = tb.denoiser(built, built.model, a["context"], a["context_mask"])(a["x"], a["t"], None, None)
    else:
        out, _ = jb.denoiser(built, built.params, a["context"], context_mask=a["context_mask"])(a["x"], a["t"], None, None)
    return adapter.to_numpy(out)


def test_progressive_init_loads_the_inner_weights_bit_equal(trained_inner, tmp_path):
    """A torch-written checkpoint into a jax nest and a jax-written one into a torch nest."""
    want = convert.torch_to_canonical(trained_inner.model.state_dict())
    small_j = jb.build(ENTRY, _inner_config(TINY), seed=0, abstract=True)
    small_j.params = convert.torch_to_flax(trained_inner.model.state_dict(), small_j.params)
    nest_t = progressive.load_inner(tb.build(ENTRY, TINY, seed=1), progressive.write_checkpoint(small_j, tmp_path / "j"))
    nest_j = progressive.load_inner(jb.build(ENTRY, TINY, seed=1), progressive.write_checkpoint(trained_inner, tmp_path / "t"))
    for got in (tb.export_weights(nest_t), jb.export_weights(nest_j)):
        inner = {k[len("inner/"):]: v for k, v in got.items() if k.startswith("inner/")}
        assert inner.keys() == want.keys() and all(np.array_equal(inner[k], want[k]) for k in want)
        assert np.abs(got["conv_in/weight"]).max() > 0  # the outer level kept its own init
    with pytest.raises(ValueError, match="levels"):  # the nest itself is not a smaller model of the nest
        progressive.load_inner(tb.build(ENTRY, TINY, seed=1), progressive.write_checkpoint(nest_t, tmp_path / "n"))


@pytest.mark.parametrize("adapter", [tb, jb], ids=["torch", "jax"])
def test_short_training_lowers_the_loss_at_every_resolution(adapter):
    """mdm-tiny, one fixed batch of smooth images, 12 AdamW steps: every resolution's eps MSE
    (on held-fixed draws) goes down."""
    built = adapter.build(ENTRY, TINY, seed=0)
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 32), indexing="ij")
    phase = rng.uniform(0, 3, (2, 1, 1, 3))
    x0 = np.sin(3 * xx[None, :, :, None] + phase) * np.cos(2 * yy[None, :, :, None] - phase)
    shapes = TINY.input_shapes(2)
    cond = framework_free.random_inputs({k: shapes[k] for k in ("context", "context_mask")}, 1, 0)
    shapes_x = framework_free.x_shape(shapes)
    eval_draws = built.process.train_draws(np.random.default_rng(9), shapes_x)
    trainer = adapter.Trainer(built, lr=3e-3)
    a_eval = adapter.device_arrays(built, {"x0": x0.astype(np.float32), **cond, **eval_draws})

    def losses():
        if adapter is tb:
            built.model.eval()
            with torch.no_grad():
                d = tb.denoiser(built, built.model, a_eval["context"], a_eval["context_mask"])
                return [float(v) for v in built.process.losses(d, a_eval["x0"], a_eval["t"], a_eval["eps"])]
        d = jb.denoiser(built, {"params": trainer.params, **trainer.others}, a_eval["context"],
                        context_mask=a_eval["context_mask"])
        return [float(v) for v in built.process.losses(d, a_eval["x0"], a_eval["t"], a_eval["eps"])]

    before = losses()
    for step in range(12):
        draws = built.process.train_draws(np.random.default_rng(100 + step), shapes_x)
        trainer.step(adapter.device_arrays(built, {"x0": x0.astype(np.float32), **cond, **draws}))
    after = losses()
    assert all(b > a for a, b in zip(after, before)), (before, after)
