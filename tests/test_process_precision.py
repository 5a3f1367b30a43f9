"""Discrete-time (DDPM/iDDPM/ADM) process math in float32 (torch and jax) against the same math in
float64 numpy on the same float32 inputs, for every discrete preset of the registry, and against
guided-diffusion's formulas (tests/test_process_discrete.py's float64 `Official`).

The official code keeps its tables in float64 and casts them per gather; the float32 results must
then be as good as float32 allows: within 1e-6 of the float64 ones, relative for the loss (a
positive scalar) and absolute below magnitude 1 / relative above it (max(1, |x|)) for the
posterior mean, a sampler step and a 5-step loop, whose values are O(1) and cross zero. Computing
sqrt(1 - gamma) from a float32 gamma (off by 2.6e-4 at k = 0 on the cosine schedule) or the mean
as (x - beta eps / sqrt(1 - gamma)) / sqrt(alpha), which cancels as alpha -> 0, misses this by
10x to 1000x.
"""

from __future__ import annotations

import numpy as np
import pytest

from architectures import registry
from architectures.processes import discrete
from architectures.processes.gaussian import GaussianProcess
from tests.test_process_discrete import Official, official_betas, official_space_timesteps

torch = pytest.importorskip("torch")
jnp = pytest.importorskip("jax.numpy")

DISCRETE = sorted((name, entry.name) for entry in registry.entries() if entry.process == "gaussian"
                  for name, preset in entry.load_presets().items() if preset.config.process.timesteps)
FLOAT32 = {"torch": lambda a: torch.from_numpy(np.asarray(a, np.float32)),
           "jax": lambda a: jnp.asarray(np.asarray(a, np.float32))}
TOL = 1e-6


def _float64(a):
    return np.asarray(a, np.float64)


def _config(preset: str, arch: str):
    return registry.get(arch).preset(preset).config


def _net(learned: bool):
    """A fixed smooth 'network' (the same function in every namespace and dtype)."""
    def denoise(x, time, y, latents):
        xp = torch if isinstance(x, torch.Tensor) else (np if isinstance(x, np.ndarray) else jnp)
        eps = 0.8 * xp.tanh(x) + 0.05
        return ((eps, xp.tanh(0.3 * x)) if learned else eps), None
    return denoise


def _err(got, want) -> float:
    """max |got - want| / max(1, |want|), elementwise."""
    got, want = _float64(got), _float64(want)
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))


def _draws(T: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x0 = (rng.integers(0, 256, (6, 4, 4, 3)) / 127.5 - 1.0).astype(np.float32)  # uint8 levels in [-1, 1]
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    t = np.array([0, 1, 2, T // 2, T - 2, T - 1], np.float32)  # both ends of the chain
    x = rng.standard_normal((3, 4, 4, 3)).astype(np.float32)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    return x0, eps, t, x, noise


@pytest.mark.parametrize("preset,arch", DISCRETE)
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_float32_discrete_process_matches_float64(preset, arch, backend):
    cfg = _config(preset, arch)
    p, f32, T = GaussianProcess(cfg.process), FLOAT32[backend], cfg.process.timesteps
    learned = getattr(cfg, "learn_sigma", False)
    x0, eps, t, x, noise = _draws(T)

    # coefficients: the float64 tables, rounded once
    for got, want in zip(p.level(f32(t)), p.level(_float64(t))):
        np.testing.assert_allclose(_float64(got), want, rtol=TOL)

    # loss (L_simple, + L_vlb with a learned variance) with a predictor 5% off the true noise, as a
    # trained network is: the VLB's KL at k = 1, 2 divides mean differences by the posterior std
    # (~1e-4), so an arbitrary prediction there amplifies float32's rounding of x_t itself to ~1e-5.
    # The network's outputs are inputs of the process math: the same float32 numbers in both runs.
    eps_hat, v = (1.05 * eps).astype(np.float32), (0.5 * eps / (1 + abs(eps))).astype(np.float32)

    def loss(conv, keep):
        out = (conv(eps_hat[keep]), conv(v[keep])) if learned else conv(eps_hat[keep])
        return float(p.training_loss(lambda *_: (out, None), conv(x0[keep]), conv(t[keep]), conv(eps[keep])))
    assert loss(f32, slice(0, 5)) == pytest.approx(loss(_float64, slice(0, 5)), rel=TOL)
    # k = T - 1, two limits of float32 itself (the official code computes the same in float32):
    # on the clipped cosine schedule gamma is 2.4e-9 and x0 from eps is the difference of two ~2e4
    # numbers (sqrt(1/g) x_t - sqrt(1/g - 1) eps) rounded to ~2e-3: 1.6e-6 relative, hence 1e-5;
    # on the linear one the KL is ~0, a sum of O(1) terms (-1 + log ratio + exp(...)) that cancel:
    # an absolute error of a few 1e-8 on a loss of 2.6e-3, hence abs 1e-6.
    assert loss(f32, slice(5, 6)) == pytest.approx(loss(_float64, slice(5, 6)), rel=10 * TOL, abs=TOL)

    # posterior mean (a DDPM step with zero noise), a DDPM step, at both ends and the middle of the chain
    grid, net = p.time_grid(), _net(learned)
    for t_now, t_next in [grid[0], grid[1], grid[len(grid) // 2], grid[-2], grid[-1]]:
        times = [np.full((3,), s, np.float32) for s in (t_now, t_next)]
        for z in (np.zeros_like(noise), noise):
            got = p.sample_step(net, f32(x), *map(f32, times), noise=f32(z)).x
            want = p.sample_step(net, _float64(x), *map(_float64, times), noise=_float64(z)).x
            assert _err(got, want) < TOL, (t_now, t_next)

    # a short loop: 5 respaced steps from x to the last x0
    got = p.sample(net, f32(x), noises=[f32(noise)] * 5, steps=5)
    want = p.sample(net, _float64(x), noises=[_float64(noise)] * 5, steps=5)
    assert _err(got, want) < TOL


@pytest.mark.parametrize("preset,arch", DISCRETE)
def test_float32_posterior_mean_matches_guided_diffusion(preset, arch):
    """p_mean_variance with the clipped x0 (predict_start_from_noise, posterior_mean_coef1/2 of the
    respaced float64 tables), against our float32 step with zero noise, in torch."""
    cfg = _config(preset, arch)
    p, T, steps = GaussianProcess(cfg.process), cfg.process.timesteps, cfg.process.sample_steps
    use = official_space_timesteps(T, steps)
    off = Official.respaced(official_betas(cfg.process.schedule, T), use)
    _, _, _, x, _ = _draws(T, seed=1)
    eps_hat = (0.8 * np.tanh(x) + 0.05).astype(np.float32)
    for t_now, t_next in p.time_grid()[:2] + p.time_grid()[-2:]:
        i = sorted(use).index(int(t_now))
        want, _ = off.p_mean_logvar(_float64(x), np.full(3, i), _float64(eps_hat), np.zeros(x.shape), clip=True)
        got = p.sample_step(lambda *a: (FLOAT32["torch"](eps_hat), None), FLOAT32["torch"](x),
                            FLOAT32["torch"](np.full(3, t_now)), FLOAT32["torch"](np.full(3, t_next)),
                            noise=torch.zeros(x.shape)).x
        assert _err(got, want) < TOL, (t_now, t_next)


def test_tables_are_float64_and_cast_per_gather():
    p = GaussianProcess(_config("iddpm-32", "unet2d").process)
    assert p.tables.stacked.dtype == np.float64 and p.tables.stacked.shape == (4001, len(discrete.COLUMNS))
    k = torch.tensor([0.0, 3999.0])
    assert p.level(k).sqrt_one_minus.dtype == torch.float32
    assert p.level(k.double()).sqrt_one_minus.dtype == torch.float64
    # k = 0 on the cosine schedule: sqrt(1 - gamma) from a float32 gamma is off by 2.6e-4
    g32 = np.float32(p.tables.gamma[1])
    assert abs(np.sqrt(np.float32(1) - g32) / p.tables.sqrt_one_minus_gamma[1] - 1) > 1e-4
    assert abs(float(p.level(k).sqrt_one_minus[0]) / p.tables.sqrt_one_minus_gamma[1] - 1) < TOL
