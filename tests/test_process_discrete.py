"""Discrete time, the iDDPM cosine schedule, the hybrid loss and the learned variance, against the
official formulas (openai/guided-diffusion, improved-diffusion) rewritten here in float64 numpy,
and against scipy's closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from architectures.processes import discrete, vlb
from architectures.processes.config import GaussianConfig
from architectures.processes.gaussian import GaussianProcess


# -- the official discrete process in float64 numpy (independent of the code under test) ------
def official_betas(name: str, T: int) -> np.ndarray:
    if name == "ddpm_linear":
        return np.linspace(1000 / T * 0.0001, 1000 / T * 0.02, T, dtype=np.float64)
    abar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # iDDPM Eq. 17
    return np.array([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)])


def official_space_timesteps(T: int, count: int) -> set[int]:
    frac_stride = 1 if count <= 1 else (T - 1) / (count - 1)
    cur, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur))
        cur += frac_stride
    return set(taken)


class Official:
    """guided-diffusion's GaussianDiffusion tables for betas (a SpacedDiffusion passes respaced betas)."""

    def __init__(self, betas: np.ndarray):
        self.betas = betas
        self.ac = np.cumprod(1.0 - betas)
        self.ac_prev = np.append(1.0, self.ac[:-1])
        self.post_var = betas * (1.0 - self.ac_prev) / (1.0 - self.ac)
        self.post_log_var_clipped = np.log(np.append(self.post_var[1], self.post_var[1:]))
        self.coef1 = betas * np.sqrt(self.ac_prev) / (1.0 - self.ac)
        self.coef2 = (1.0 - self.ac_prev) * np.sqrt(1.0 - betas) / (1.0 - self.ac)

    @classmethod
    def respaced(cls, betas: np.ndarray, use: set[int]) -> "Official":
        last, new = 1.0, []
        for i, a in enumerate(np.cumprod(1.0 - betas)):
            if i in use:
                new.append(1 - a / last)
                last = a
        return cls(np.array(new))

    def p_mean_logvar(self, x_t, t, eps, v, clip):
        e = lambda arr: arr[t].reshape(-1, *([1] * (x_t.ndim - 1)))
        x0 = np.sqrt(1.0 / e(self.ac)) * x_t - np.sqrt(1.0 / e(self.ac) - 1) * eps
        x0 = np.clip(x0, -1, 1) if clip else x0
        frac = (v + 1) / 2
        log_var = frac * np.log(e(self.betas)) + (1 - frac) * e(self.post_log_var_clipped)
        return e(self.coef1) * x0 + e(self.coef2) * x_t, log_var

    def vb_bpd(self, x0, x_t, t, eps, v):
        e = lambda arr: arr[t].reshape(-1, *([1] * (x_t.ndim - 1)))
        true_mean = e(self.coef1) * x0 + e(self.coef2) * x_t
        mean, log_var = self.p_mean_logvar(x_t, t, eps, v, clip=False)
        kl = 0.5 * (-1 + log_var - e(self.post_log_var_clipped) + np.exp(e(self.post_log_var_clipped) - log_var)
                    + (true_mean - mean) ** 2 * np.exp(-log_var))
        cdf = lambda z: 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
        inv = np.exp(-0.5 * log_var)
        plus, minus = cdf(inv * (x0 - mean + 1 / 255)), cdf(inv * (x0 - mean - 1 / 255))
        logp = np.where(x0 < -0.999, np.log(np.maximum(plus, 1e-12)),
                        np.where(x0 > 0.999, np.log(np.maximum(1 - minus, 1e-12)),
                                 np.log(np.maximum(plus - minus, 1e-12))))
        flat = lambda a: a.reshape(a.shape[0], -1).mean(1) / np.log(2.0)
        return np.where(t == 0, flat(-logp), flat(kl))


def make(**kw) -> GaussianProcess:
    base = dict(schedule="cosine_iddpm", timesteps=1000, sampler="ddpm", sample_steps=250)
    return GaussianProcess(GaussianConfig(**{**base, **kw}))


# -- schedules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, T", [("cosine_iddpm", 1000), ("cosine_iddpm", 4000), ("ddpm_linear", 1000),
                                     ("ddpm_linear", 50)])
def test_discrete_alphas_cumprod_are_the_official_ones(name, T):
    p = make(schedule=name, timesteps=T, sample_steps=1)
    ref = np.cumprod(1.0 - official_betas(name, T))
    k = np.arange(-1, T, dtype=np.float64)
    np.testing.assert_allclose(p.gamma(k), np.append(1.0, ref), rtol=1e-12)
    np.testing.assert_allclose(discrete.betas(p.config), official_betas(name, T), rtol=1e-12)


def test_iddpm_cosine_is_eq17_with_betas_clipped_at_0999():
    T = 1000
    f = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    betas = discrete.betas(GaussianConfig(schedule="cosine_iddpm", timesteps=T))
    assert betas.max() == 0.999 and betas[-1] == 0.999 and (betas[:-1] < 0.999).all()  # only the last step clips
    ac = np.cumprod(1 - betas)
    np.testing.assert_allclose(ac[:-1], f(np.arange(1, T) / T) / f(0), rtol=1e-9)  # closed form before the clip
    t = np.linspace(0, 1, 101)  # continuous time: the closed form itself
    np.testing.assert_allclose(GaussianProcess(GaussianConfig(schedule="cosine_iddpm")).gamma(t),
                               np.clip(f(t) / f(0), 1e-9, 1), rtol=1e-9, atol=1e-15)
    pix2seq = GaussianProcess(GaussianConfig(schedule="cosine")).gamma(np.array([0.5]))
    assert not np.allclose(pix2seq, f(0.5) / f(0))  # RIN keeps its own offsets


def test_discrete_gammas_in_float32_torch_and_jax_keep_float64_accuracy():
    import jax.numpy as jnp
    import torch
    p = make(schedule="ddpm_linear")
    off = Official(official_betas("ddpm_linear", 1000))
    k = np.array([0, 1, 2, 500, 998, 999], np.float32)
    for arr in (torch.from_numpy(k), jnp.asarray(k)):
        terms = p.step_terms(arr, arr - 1, None, None)
        beta, om = (np.asarray(a, np.float64) for a in (terms.beta, terms.one_minus))
        np.testing.assert_allclose(beta, off.betas[k.astype(int)], rtol=2e-6)  # small betas stay accurate
        np.testing.assert_allclose(om, 1 - off.ac[k.astype(int)], rtol=2e-6)


# -- respacing and the time fed to the network ---------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4000), st.data())
def test_respacing_is_guided_diffusions(T, data):
    steps = data.draw(st.integers(1, T))
    assert discrete.respaced(T, steps) == sorted(official_space_timesteps(T, steps))


def test_time_grid_walks_respaced_indices_and_network_sees_integer_k():
    p = make(sample_steps=4, timesteps=10)
    grid = p.time_grid()
    assert grid == [(9.0, 6.0), (6.0, 3.0), (3.0, 0.0), (0.0, -1.0)]
    seen = []

    def denoise(x, time, y, latents):
        seen.append(np.asarray(time).copy())
        return x * 0, None
    p.sample(denoise, np.zeros((2, 1, 1, 1)), noises=[np.zeros((2, 1, 1, 1))] * 4)
    np.testing.assert_array_equal(np.stack(seen)[:, 0], [9, 6, 3, 0])  # ADM's integer timesteps
    rescaled = make(sample_steps=2, timesteps=4000, rescale_timesteps=True)
    assert rescaled.network_time(np.array([3999.0]), None)[0] == 3999 * 1000 / 4000  # improved-diffusion


def test_discrete_config_is_validated():
    for kw in [dict(timesteps=-1), dict(timesteps=10, sample_steps=11), dict(timesteps=10, time_difference=1.0),
               dict(rescale_timesteps=True), dict(timesteps=10, sample_schedule="linear"), dict(vlb_weight=-1.0)]:
        with pytest.raises(ValueError):
            GaussianConfig(**{"sample_steps": 5, **kw})


# -- VLB pieces against scipy -------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.floats(-2, 2), st.floats(-3, 1), st.floats(-2, 2), st.floats(-3, 1))
def test_normal_kl_is_the_integral(m1, lv1, m2, lv2):
    p, q = stats.norm(m1, math.exp(lv1 / 2)), stats.norm(m2, math.exp(lv2 / 2))
    lo, hi = m1 - 12 * p.std(), m1 + 12 * p.std()
    ref = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), lo, hi, points=[m1], limit=200)[0]
    assert float(vlb.normal_kl(np.array(m1), np.array(lv1), np.array(m2), np.array(lv2))) == pytest.approx(
        ref, rel=1e-5, abs=1e-7)


def test_discretized_gaussian_likelihood_is_the_bin_mass():
    z = np.linspace(-8, 8, 2001)
    assert np.abs(vlb.approx_standard_normal_cdf(z) - stats.norm.cdf(z)).max() < 2e-4  # the tanh approximation
    rng = np.random.default_rng(0)
    x = np.append(np.array([-1.0, 1.0]), rng.integers(1, 255, 30) / 127.5 - 1.0)  # uint8 levels incl. both edges
    near = np.arange(x.size) % 2 == 0  # half the means inside x's bin, half far from it
    mean = np.where(near, x + rng.uniform(-0.002, 0.002, x.shape), rng.uniform(-1, 1, x.shape))
    log_scale = np.where(near, rng.uniform(-7, -5, x.shape), rng.uniform(-6, 0, x.shape))
    got = vlb.discretized_gaussian_log_likelihood(x, mean, log_scale)
    for cdf, tol in [(vlb.approx_standard_normal_cdf, dict(rtol=1e-12)), (stats.norm.cdf, dict(atol=4e-4))]:
        c = lambda u: cdf((u - mean) / np.exp(log_scale))
        mass = np.where(x < -0.999, c(x + 1 / 255), np.where(x > 0.999, 1 - c(x - 1 / 255),
                                                               c(x + 1 / 255) - c(x - 1 / 255)))
        np.testing.assert_allclose(np.exp(got), np.maximum(mass, 1e-12), **tol)
    assert (got > np.log(0.5)).sum() >= 2 and (got < np.log(1e-3)).sum() >= 2  # both regimes exercised


# -- the hybrid loss against the official formulas -----------------------------------------------
def _hybrid_case(T=1000, b=6, seed=0, schedule="cosine_iddpm"):
    rng = np.random.default_rng(seed)
    x0 = rng.integers(0, 256, (b, 4, 4, 3)) / 127.5 - 1.0  # uint8 images in [-1, 1]
    t = np.array([0, 1, 2, T // 2, T - 2, T - 1][:b], np.float64)
    eps, out_eps, v = (rng.standard_normal(x0.shape) for _ in range(3))
    return x0, t, eps, out_eps, np.tanh(v)


@pytest.mark.parametrize("schedule", ["cosine_iddpm", "ddpm_linear"])
def test_vb_terms_match_guided_diffusion(schedule):
    p = make(schedule=schedule)
    off = Official(official_betas(schedule, 1000))
    x0, t, eps, out_eps, v = _hybrid_case()
    x_t = p.add_noise(x0, p.gamma(t), eps)
    got = p.vb_terms(x0, x_t, t, out_eps, v)
    ref = off.vb_bpd(x0, x_t, t.astype(int), out_eps, v)
    np.testing.assert_allclose(got, ref, rtol=1e-7)
    assert got[0] == pytest.approx(ref[0]) and np.isfinite(got).all()  # t = 0: the decoder NLL


@pytest.mark.parametrize("T", [1000, 4000])
def test_hybrid_loss_is_mse_plus_lambda_T_vb(T):
    """guided-diffusion (T = 1000): mse + vb; improved-diffusion RESCALED_MSE: mse + vb * T / 1000."""
    p = make(timesteps=T)
    x0, t, eps, out_eps, v = _hybrid_case(T)
    off = Official(official_betas("cosine_iddpm", T))
    x_t = np.sqrt(off.ac[t.astype(int)]).reshape(-1, 1, 1, 1) * x0 + np.sqrt(1 - off.ac[t.astype(int)]).reshape(
        -1, 1, 1, 1) * eps
    loss = p.training_loss(lambda *a: ((out_eps, v), None), x0, t, eps)
    mse = ((out_eps - eps) ** 2).reshape(len(t), -1).mean(1)
    ref = np.mean(mse + off.vb_bpd(x0, x_t, t.astype(int), out_eps, v) * T / 1000)
    assert float(loss) == pytest.approx(ref, rel=1e-9)
    plain = p.training_loss(lambda *a: (out_eps, None), x0, t, eps)
    assert float(plain) == pytest.approx(np.mean(mse), rel=1e-12)  # no v: L_simple only


def test_hybrid_loss_stops_the_gradient_of_the_mean():
    """d loss / d mean-prediction is the MSE's alone; v gets the VLB's gradient (torch)."""
    import torch
    p = make()
    x0, t, eps, out_eps, v = (torch.tensor(a) for a in _hybrid_case())
    mean = out_eps.clone().requires_grad_(True)
    var = v.clone().requires_grad_(True)
    loss = p.training_loss(lambda *a: ((mean, var), None), x0, t, eps, stop_gradient=torch.Tensor.detach)
    loss.backward()
    torch.testing.assert_close(mean.grad, 2 * (out_eps - eps) / out_eps.numel())
    assert var.grad.abs().sum() > 0
    mean.grad = None
    p.training_loss(lambda *a: ((mean, var), None), x0, t, eps).backward()  # without the stop: differs
    assert not torch.allclose(mean.grad, 2 * (out_eps - eps) / out_eps.numel())


def test_continuous_time_rejects_a_learned_variance():
    p = GaussianProcess(GaussianConfig(schedule="cosine"))
    x0, t, eps, out_eps, v = _hybrid_case()
    with pytest.raises(ValueError, match="discrete time"):
        p.training_loss(lambda *a: ((out_eps, v), None), x0, t / 1000, eps)


# -- sampling with the learned variance ----------------------------------------------------------
@pytest.mark.parametrize("steps", [250, 1000])
def test_learned_variance_step_is_guided_diffusions_p_sample(steps):
    p = make(sample_steps=steps, schedule="ddpm_linear")
    use = official_space_timesteps(1000, steps)
    off = Official.respaced(official_betas("ddpm_linear", 1000), use)
    rng = np.random.default_rng(1)
    x, noise, out_eps, v = (rng.standard_normal((3, 4, 4, 3)) for _ in range(4))
    v = np.tanh(v)
    for j, (t_now, t_next) in enumerate(p.time_grid()[::-1][:3] + p.time_grid()[:2]):  # both ends of the chain
        i = sorted(use).index(int(t_now))  # the respaced index the official model sees as map[i] = t_now
        out = p.sample_step(lambda *a: ((out_eps, v), None), x, np.full(3, t_now), np.full(3, t_next), noise=noise)
        mean, log_var = off.p_mean_logvar(x, np.full(3, i), out_eps, v, clip=True)
        ref = mean + (i != 0) * np.exp(0.5 * log_var) * noise
        if i == 0:  # the last step: the official sample is the mean (= x0 hat), ours returns x0 hat
            np.testing.assert_allclose(out.x0, mean, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(out.x, ref, rtol=1e-7, atol=1e-10)


def test_guidance_guides_the_mean_and_keeps_the_conditional_variance():
    p = make(guidance_scale=2.0, sample_steps=10)
    rng = np.random.default_rng(2)
    e_c, e_u, v_c, v_u = (rng.standard_normal((2, 2, 2, 1)) for _ in range(4))

    def denoise(x, time, y, lat):  # row i: the conditional or null output of example i % 2
        rows = [(e_u, v_u) if label == 1 else (e_c, v_c) for label in y]
        return (np.stack([r[0][i % 2] for i, r in enumerate(rows)]), np.stack([r[1][i % 2] for i, r in enumerate(rows)])), None
    (pred, v), _ = p.predict(denoise, np.zeros((2, 2, 2, 1)), np.ones(2), np.zeros(2, int), y_null=np.ones(2, int))
    np.testing.assert_allclose(pred, 3 * e_c - 2 * e_u)
    np.testing.assert_array_equal(v, v_c)
    out = p.sample_step(denoise, np.zeros((2, 2, 2, 1)), np.full(2, 999.0), np.full(2, 899.0), np.zeros(2, int),
                        noise=np.zeros((2, 2, 2, 1)), y_null=np.ones(2, int))
    assert out.nfe == 2 and p.nfe_per_sample_step(True) == 2  # counted as they ran
