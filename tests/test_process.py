"""The gaussian process against closed forms written here in numpy, and across namespaces."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from architectures.processes.config import GaussianConfig
from architectures.processes.gaussian import GaussianProcess, forward_passes_per_sample_step, forward_passes_per_train_step

# -- closed forms (independent of the code under test) ------------------------------------


def np_gamma(t, schedule, s=0.0, e=1.0, tau=1.0):
    t = np.asarray(t, np.float64)
    if schedule == "cosine":
        g = np.cos((t + 0.0002) / 1.00025 * np.pi / 2) ** 2
    elif schedule == "cosine_shifted":
        f = lambda u: np.cos(u * np.pi / 2) ** (2 * tau)
        g = (f(t * (e - s) + s) - f(e)) / (f(s) - f(e))
    elif schedule == "sigmoid":
        sig = lambda u: 1 / (1 + np.exp(-u))
        g = (sig(e / tau) - sig((t * (e - s) + s) / tau)) / (sig(e / tau) - sig(s / tau))
    else:
        g = 1 - t
    return np.clip(g, 1e-9, 1.0)


SCHEDULE_CASES = st.one_of(
    st.just(("cosine", 0.0, 1.0, 1.0)),
    st.just(("linear", 0.0, 1.0, 1.0)),
    st.tuples(st.just("cosine_shifted"), st.floats(0.0, 0.45), st.floats(0.55, 1.0), st.floats(0.25, 3.0)),
    st.tuples(st.just("sigmoid"), st.floats(-6.0, -0.5), st.floats(0.5, 6.0), st.floats(0.2, 3.0)),
)


def make(**kw) -> GaussianProcess:
    return GaussianProcess(GaussianConfig(**kw))


@settings(max_examples=60, deadline=None)
@given(SCHEDULE_CASES, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=16))
def test_schedules_match_closed_forms(case, ts):
    schedule, s, e, tau = case
    p = make(schedule=schedule, start=s, end=e, tau=tau)
    t = np.array(ts, np.float64)
    got = p.gamma(t)
    np.testing.assert_allclose(got, np_gamma(t, schedule, s, e, tau), rtol=1e-9, atol=1e-15)
    assert np.all((got >= 1e-9) & (got <= 1.0))


@settings(max_examples=40, deadline=None)
@given(SCHEDULE_CASES)
def test_schedules_endpoints_and_monotone(case):
    schedule, s, e, tau = case
    p = make(schedule=schedule, start=s, end=e, tau=tau)
    g = p.gamma(np.linspace(0.0, 1.0, 257))
    assert g[0] == pytest.approx(1.0, abs=1e-6) and g[-1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(g) <= 1e-12)


def test_schedules_float32_torch_jax_match_float64():
    import jax.numpy as jnp
    import torch
    t = np.linspace(0, 1, 101)
    for kw in [dict(schedule="cosine"), dict(schedule="cosine_shifted", start=0.2, end=1.0, tau=1.5),
               dict(schedule="sigmoid", start=-3, end=3, tau=0.9), dict(schedule="linear")]:
        p, ref = make(**kw), np_gamma(t, kw["schedule"], kw.get("start", 0), kw.get("end", 1), kw.get("tau", 1))
        for arr in (torch.tensor(t, dtype=torch.float32), jnp.asarray(t, dtype=jnp.float32)):
            g = np.asarray(p.gamma(arr))
            assert np.all(np.isfinite(g))
            np.testing.assert_allclose(g, ref, atol=2e-6)


# -- predictions ----------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["eps", "x0", "v"]), st.floats(1e-4, 1 - 1e-4), st.integers(0, 2**31 - 1))
def test_prediction_round_trip(kind, g, seed):
    rng = np.random.default_rng(seed)
    x0, eps = rng.uniform(-1, 1, (3, 4, 4, 2)), rng.standard_normal((3, 4, 4, 2))
    gamma = np.full(3, g)
    x_t = math.sqrt(g) * x0 + math.sqrt(1 - g) * eps
    p = make(prediction=kind)
    np.testing.assert_allclose(p.add_noise(x0, gamma, eps), x_t, rtol=1e-12, atol=1e-12)
    pred = p.target(x0, eps, gamma)
    expected = {"eps": eps, "x0": x0, "v": math.sqrt(g) * eps - math.sqrt(1 - g) * x0}[kind]
    np.testing.assert_allclose(pred, expected, rtol=1e-12, atol=1e-12)
    x0_hat, eps_hat = p.x0_eps(x_t, gamma, pred, clip=False)
    np.testing.assert_allclose(x0_hat, x0, atol=1e-8)
    np.testing.assert_allclose(eps_hat, eps, atol=1e-8)


def test_sampling_clips_x0_and_keeps_eps_consistent():
    p = make(prediction="x0")
    x_t, gamma = np.full((1, 2, 2, 1), 0.3), np.array([0.5])
    x0, eps = p.x0_eps(x_t, gamma, np.full((1, 2, 2, 1), 3.0), clip=True)
    assert np.all(x0 == 1.0)
    np.testing.assert_allclose(math.sqrt(0.5) * x0 + math.sqrt(0.5) * eps, x_t)


# -- a toy network written for any namespace -------------------------------------------------
def toy_denoise(x, time, y, latents):
    """Deterministic, nonlinear, uses every input: (pred like x, latents_out)."""
    from array_api_compat import array_namespace

    xp = array_namespace(x)
    shift = xp.reshape(time, (-1,) + (1,) * (x.ndim - 1))
    if y is not None:
        shift = shift + 0.05 * xp.reshape(xp.astype(y, x.dtype), shift.shape)
    lat = 0.0 if latents is None else xp.reshape(xp.mean(latents, axis=(1, 2)), shift.shape)
    pred = xp.tanh(0.7 * x + shift + 0.3 * lat)
    lat_out = None if latents is None else latents * 0.5 + xp.reshape(xp.mean(x, axis=(1, 2, 3)), (-1, 1, 1)) + 1.0
    return pred, lat_out


def _case_arrays(seed=0, b=3):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return dict(x0=np.clip(f(b, 4, 4, 2), -1, 1), eps=f(b, 4, 4, 2), t=rng.uniform(0, 1, b).astype(np.float32),
                keep=np.array([1, 0, 1][:b], np.float32), y=np.array([0, 2, 1][:b], np.int32),
                latents=np.zeros((b, 5, 6), np.float32), noise=f(b, 4, 4, 2), x=f(b, 4, 4, 2))


def _run_all(p: GaussianProcess, a: dict):
    loss = p.training_loss(toy_denoise, a["x0"], a["t"], a["eps"], a["y"], latents=a["latents"], keep=a["keep"])
    t_now, t_next = (a["t"] * 0 + 0.6), (a["t"] * 0 + 0.55)
    out = p.sample_step(toy_denoise, a["x"], t_now, t_next, a["y"], a["latents"] + 1, a["noise"], a["y"] * 0 + 10)
    full = p.sample(toy_denoise, a["x"], a["y"], a["latents"], [a["noise"]] * 4, a["y"] * 0 + 10, steps=4)
    return [loss, out.x, out.x0, out.latents, full]


@pytest.mark.parametrize("kw", [
    dict(prediction="eps", sampler="ddim", self_condition_rate=0.9, time_input="gamma"),
    dict(prediction="v", sampler="ddpm", ddpm_variance="small", schedule="sigmoid", start=-3, end=3, tau=0.9),
    dict(prediction="x0", sampler="ddpm", guidance_scale=1.5, schedule="cosine_shifted", start=0.2, end=1.0, tau=1.0,
         time_difference=0.5),
])
def test_same_numbers_in_numpy_torch_and_jax(kw):
    import jax.numpy as jnp
    import torch
    p, a = make(**kw), _case_arrays()
    ref = [np.asarray(r) for r in _run_all(p, a)]
    for convert in (torch.from_numpy, jnp.asarray):
        got = _run_all(p, {k: convert(v) for k, v in a.items()})
        for r, g in zip(ref, got):
            np.testing.assert_allclose(np.asarray(g), r, rtol=2e-5, atol=2e-5)


# -- samplers ---------------------------------------------------------------------------------
def oracle(p: GaussianProcess, x0: np.ndarray):
    """The perfect network for data x0: returns the exact eps / x0 / v for the x_t it sees."""
    def denoise(x_t, time, y, latents):
        g = time if p.config.time_input == "gamma" else np_gamma(time, p.config.schedule, p.config.start,
                                                                 p.config.end, p.config.tau)
        g = g.reshape(-1, 1, 1, 1)
        eps = (x_t - np.sqrt(g) * x0) / np.sqrt(1 - g)
        pred = {"eps": eps, "x0": x0, "v": np.sqrt(g) * eps - np.sqrt(1 - g) * x0}[p.config.prediction]
        return pred, latents
    return denoise


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("schedule", ["cosine", "sigmoid", "linear"])
@pytest.mark.parametrize("td", [0.0, 1.0])
def test_ddim_with_oracle_recovers_x0(prediction, schedule, td):
    p = make(prediction=prediction, schedule=schedule, start=-3 if schedule == "sigmoid" else 0,
             end=3 if schedule == "sigmoid" else 1, sampler="ddim", time_difference=td, sample_steps=7)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (2, 4, 4, 3))
    out = p.sample(oracle(p, x0), rng.standard_normal(x0.shape))
    np.testing.assert_allclose(out, x0, atol=1e-6)


def test_ddim_stays_on_the_noising_trajectory():
    p = make(sampler="ddim", sample_steps=5, schedule="linear")
    rng = np.random.default_rng(2)
    x0, eps = rng.uniform(-1, 1, (2, 3, 3, 1)), rng.standard_normal((2, 3, 3, 1))
    g, g_next = np.full(2, 0.4), np.full(2, 0.7)
    x_t = np.sqrt(0.4) * x0 + np.sqrt(0.6) * eps
    out = p.sample_step(oracle(p, x0), x_t, 1 - g, 1 - g_next)
    np.testing.assert_allclose(out.x, np.sqrt(0.7) * x0 + np.sqrt(0.3) * eps, atol=1e-12)


@pytest.mark.parametrize("variance", ["large", "small"])
def test_ddpm_step_is_the_gaussian_posterior(variance):
    """Small variance with the true x0 is exactly q(x_s | x_t, x0) (Ho et al. 2020, Eq. 6-7)."""
    p = make(sampler="ddpm", ddpm_variance=variance, schedule="linear", prediction="eps")
    rng = np.random.default_rng(3)
    x0, eps, noise = rng.uniform(-1, 1, (2, 3, 3, 1)), rng.standard_normal((2, 3, 3, 1)), rng.standard_normal((2, 3, 3, 1))
    gt, gs = 0.3, 0.5  # gamma now, gamma next (less noise)
    x_t = np.sqrt(gt) * x0 + np.sqrt(1 - gt) * eps
    beta = 1 - gt / gs
    mean = np.sqrt(gs) * beta / (1 - gt) * x0 + np.sqrt(gt / gs) * (1 - gs) / (1 - gt) * x_t
    var = beta if variance == "large" else (1 - gs) / (1 - gt) * beta
    out = p.sample_step(oracle(p, x0), x_t, np.full(2, 1 - gt), np.full(2, 1 - gs), noise=noise)
    np.testing.assert_allclose(out.x, mean + np.sqrt(var) * noise, atol=1e-12)
    alpha, v = p.ddpm_variance(np.array([gt]), np.array([gs]))
    np.testing.assert_allclose(alpha, gt / gs)  # assert_allclose returns None: chaining with `and` skipped the next check
    np.testing.assert_allclose(v, var)


def test_ddpm_needs_noise_and_is_deterministic_given_it():
    p = make(sampler="ddpm", sample_steps=6)
    rng = np.random.default_rng(4)
    x, noises = rng.standard_normal((2, 4, 4, 1)), [rng.standard_normal((2, 4, 4, 1)) for _ in range(6)]
    a, b = (p.sample(toy_denoise, x, noises=noises) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    other = [n[::-1] for n in noises]
    assert not np.allclose(p.sample(toy_denoise, x, noises=other), a)
    with pytest.raises(ValueError, match="noise"):
        p.sample(toy_denoise, x)


def test_time_grid_and_time_difference():
    assert make(sample_steps=4).time_grid() == [(1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]
    grid = make(sample_steps=4, time_difference=1.0).time_grid()
    assert grid == [(1.0, 0.5), (0.75, 0.25), (0.5, 0.0), (0.25, 0.0)]


def labelled(cond, uncond, null: int = 1):
    """A denoise whose row i returns cond[i % B] (uncond[i % B] for the null label): the same
    outputs whether the process calls it once on [x; x] or twice on x."""
    def denoise(x, time, y, latents):
        b = cond.shape[0]
        return np.stack([(uncond if int(label) == null else cond)[i % b] for i, label in enumerate(y)]), None
    return denoise


@pytest.mark.parametrize("mode", ["batched", "two_calls"])
def test_guidance_combines_conditional_and_null_passes(mode):
    p = make(guidance_scale=2.0, guidance_mode=mode)
    calls = []

    def denoise(x, time, y, latents):
        calls.append((y.copy(), latents, time.copy()))
        return x * 0 + y.reshape(-1, 1, 1, 1).astype(float), latents + y.reshape(-1, 1, 1)
    y, lat = np.array([3, 4]), np.random.default_rng(0).standard_normal((2, 2, 2))
    pred, lat_out = p.predict(denoise, np.zeros((2, 1, 1, 1)), np.array([0.5, 0.7]), y, lat, y_null=np.full(2, 10))
    if mode == "batched":  # one call of batch 2B: [x; x], [t; t], [y; y_null], [latents; latents]
        assert len(calls) == 1
        np.testing.assert_array_equal(calls[0][0], [3, 4, 10, 10])
        np.testing.assert_array_equal(calls[0][1], np.concatenate([lat, lat]))
        np.testing.assert_array_equal(calls[0][2], [0.5, 0.7, 0.5, 0.7])
    else:  # two calls of batch B, the null pass with the same latents
        assert len(calls) == 2 and calls[1][1] is lat
        np.testing.assert_array_equal(calls[1][0], [10, 10])
    np.testing.assert_allclose(pred.ravel(), 3 * y - 2 * 10)
    np.testing.assert_array_equal(lat_out, lat + y.reshape(-1, 1, 1))  # the conditional half's latents
    assert forward_passes_per_sample_step(p.config) == 2 and forward_passes_per_sample_step(make().config) == 1
    out = p.sample_step(denoise, np.zeros((2, 1, 1, 1)), np.ones(2), np.full(2, 0.5), y, lat, y_null=np.full(2, 10))
    assert out.nfe == 2  # either way the network evaluated 2B images
    with pytest.raises(ValueError, match="y_null"):
        p.predict(denoise, np.zeros((2, 1, 1, 1)), np.ones(2), y, lat)


def test_guidance_mode_is_validated():
    with pytest.raises(ValueError, match=r"process.guidance_mode='once'; allowed: \['batched', 'two_calls'\]"):
        make(guidance_mode="once")
    with pytest.raises(ValueError, match="process.guided_channels=-1"):
        make(guided_channels=-1)


@pytest.mark.parametrize("channel_axis", [1, -1])
def test_guided_channels_guide_only_the_first_channels(channel_axis):
    """DiT's forward_with_cfg guides eps channels 0..2 and keeps the conditional output on the rest."""
    rng = np.random.default_rng(3)
    shape = (2, 4, 3, 3) if channel_axis == 1 else (2, 3, 3, 4)
    c, u = rng.standard_normal(shape), rng.standard_normal(shape)
    p = GaussianProcess(GaussianConfig(guidance_scale=1.5, guided_channels=3), channel_axis=channel_axis)
    got = p.predict(labelled(c, u), np.zeros(shape), np.ones(2), np.zeros(2, int), y_null=np.ones(2, int))[0]
    want = np.moveaxis(c, channel_axis, 0).copy()
    want[:3] = 2.5 * want[:3] - 1.5 * np.moveaxis(u, channel_axis, 0)[:3]
    np.testing.assert_allclose(got, np.moveaxis(want, 0, channel_axis), rtol=1e-15)
    assert np.abs(np.take(got, [3], axis=channel_axis) - np.take(c, [3], axis=channel_axis)).max() == 0


def test_guiding_v_equals_guiding_eps():
    p = make(prediction="v", guidance_scale=1.5)
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((2, 3, 3, 1)), np.array([0.3, 0.8])
    v_c, v_u = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    guided = p.predict(labelled(v_c, v_u), x, g, np.zeros(2, int), y_null=np.ones(2, int))[0]
    eps = lambda v: p.x0_eps(x, g, v, clip=False)[1]
    np.testing.assert_allclose(eps(guided), 2.5 * eps(v_c) - 1.5 * eps(v_u), atol=1e-12)


# -- latent self-conditioning ----------------------------------------------------------------
def test_self_conditioning_training_wiring():
    p = make(self_condition_rate=0.9, time_input="gamma")
    a, seen = _case_arrays(), []

    def denoise(x, time, y, latents):
        seen.append(latents.copy())
        return toy_denoise(x, time, y, latents)
    loss = p.training_loss(denoise, a["x0"], a["t"], a["eps"], a["y"], latents=a["latents"], keep=a["keep"])
    assert len(seen) == 2 == forward_passes_per_train_step(p.config)
    assert not seen[0].any()  # pass 1: zero latents
    gamma = p.gamma(a["t"])
    x_t = p.add_noise(a["x0"], gamma, a["eps"])
    prev = toy_denoise(x_t, gamma, a["y"], a["latents"])[1] * a["keep"][:, None, None]
    np.testing.assert_allclose(seen[1], prev)  # pass 2: pass-1 latents, dropped where keep == 0
    assert not seen[1][1].any() and seen[1][0].any()
    pred = toy_denoise(x_t, gamma, a["y"], prev)[0]
    np.testing.assert_allclose(loss, np.mean((pred - a["eps"]) ** 2), rtol=1e-6)
    assert forward_passes_per_train_step(make().config) == 1
    assert forward_passes_per_train_step(p.config, has_latents=False) == 1  # no latents: no extra pass
    seen = []
    p.training_loss(lambda *args: (seen.append(1) or toy_denoise(*args)[0], None), a["x0"], a["t"], a["eps"], a["y"],
                    latents=None, keep=a["keep"])
    assert len(seen) == 1


def test_self_conditioning_sampling_feeds_latents_back():
    p = make(sample_steps=4, time_input="gamma")
    a, seen = _case_arrays(), []

    def denoise(x, time, y, latents):
        seen.append(latents.copy())
        return toy_denoise(x, time, y, latents)
    p.sample(denoise, a["x"], a["y"], a["latents"])
    assert len(seen) == 4 and not seen[0].any()
    x = a["x"]
    for k, (t_now, t_next) in enumerate(p.time_grid()):  # replay: the latents out of step k go into k + 1
        out = p.sample_step(toy_denoise, x, np.full(3, t_now, np.float32), np.full(3, t_next, np.float32),
                            a["y"], seen[k])
        if k + 1 < 4:
            np.testing.assert_allclose(seen[k + 1], out.latents, rtol=1e-6)
        x = out.x


def _sc_grad_case(xp_name):
    """Gradient of the self-conditioned loss w.r.t. a scalar weight w that enters both passes."""
    a = _case_arrays(b=3)
    p = make(self_condition_rate=0.9, time_input="gamma")

    def denoise_w(w):
        def denoise(x, time, y, latents):
            pred, lat = toy_denoise(x, time, y, latents)
            return pred * w, lat * w
        return denoise
    return p, a, denoise_w


def test_self_conditioning_stops_gradient_torch():
    import torch
    p, a, denoise_w = _sc_grad_case("torch")
    t = {k: torch.from_numpy(v) for k, v in a.items()}

    def grad(stop):
        w = torch.tensor(1.3, requires_grad=True)
        loss = p.training_loss(denoise_w(w), t["x0"], t["t"], t["eps"], t["y"], latents=t["latents"], keep=t["keep"],
                               stop_gradient=stop)
        loss.backward()
        return float(w.grad)
    # reference: pass-1 latents computed as constants, outside autograd
    gamma = p.gamma(t["t"])
    x_t = p.add_noise(t["x0"], gamma, t["eps"])
    with torch.no_grad():
        prev = denoise_w(1.3)(x_t, gamma, t["y"], t["latents"])[1] * t["keep"][:, None, None]
    w = torch.tensor(1.3, requires_grad=True)
    torch.mean((denoise_w(w)(x_t, gamma, t["y"], prev)[0] - t["eps"]) ** 2).backward()
    assert grad(torch.Tensor.detach) == pytest.approx(float(w.grad), rel=1e-5)
    assert grad(lambda z: z) != pytest.approx(float(w.grad), rel=1e-3)  # the check can fail


def test_self_conditioning_stops_gradient_jax():
    import jax
    import jax.numpy as jnp
    p, a, denoise_w = _sc_grad_case("jax")
    j = {k: jnp.asarray(v) for k, v in a.items()}

    def grad(stop):
        f = lambda w: p.training_loss(denoise_w(w), j["x0"], j["t"], j["eps"], j["y"], latents=j["latents"],
                                      keep=j["keep"], stop_gradient=stop)
        return float(jax.grad(f)(1.3))
    gamma = p.gamma(j["t"])
    x_t = p.add_noise(j["x0"], gamma, j["eps"])
    prev = denoise_w(1.3)(x_t, gamma, j["y"], j["latents"])[1] * j["keep"][:, None, None]
    ref = float(jax.grad(lambda w: jnp.mean((denoise_w(w)(x_t, gamma, j["y"], prev)[0] - j["eps"]) ** 2))(1.3))
    assert grad(jax.lax.stop_gradient) == pytest.approx(ref, rel=1e-5)
    assert grad(lambda z: z) != pytest.approx(ref, rel=1e-3)


def test_config_rejects_bad_values():
    for kw in [dict(schedule="cosine_shifted", start=0.5, end=1.2), dict(guidance_scale=-1.0),
               dict(time_difference=-0.1), dict(prediction="score")]:
        with pytest.raises(ValueError):
            GaussianConfig(**kw)
    assert dataclasses.replace(GaussianConfig(), sampler="ddpm").sampler == "ddpm"


def test_sampler_walks_the_sample_schedule_and_training_the_training_one():
    from architectures.processes import schedules

    a = _case_arrays()
    p = make(schedule="sigmoid", start=-3.0, end=3.0, tau=0.9, sample_schedule="cosine", time_input="gamma")
    t_now, t_next = np.full(3, 0.6, np.float32), np.full(3, 0.4, np.float32)
    seen = []

    def denoise(x, time, y, latents):
        seen.append(np.asarray(time))
        return toy_denoise(x, time, y, latents)

    out = p.sample_step(denoise, a["x"], t_now, t_next, a["y"], a["latents"])
    g, g_next = schedules.cosine(t_now.astype(np.float64)), schedules.cosine(t_next.astype(np.float64))
    np.testing.assert_allclose(seen[0], g, rtol=1e-6)  # the network sees the cosine noise level
    np.testing.assert_allclose(out.x, p.ddim_update(out.x0, p.x0_eps(a["x"], g, toy_denoise(a["x"], g, a["y"], a["latents"])[0])[1], g_next),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(p.sample_gamma(t_now), p.gamma(t_now))  # the two schedules differ here
    np.testing.assert_allclose(make(schedule="sigmoid", start=-3.0, end=3.0, tau=0.9).sample_gamma(t_now),
                               p.gamma(t_now))  # "" samples on the training schedule
    with pytest.raises(ValueError, match="sample_schedule"):
        make(sample_schedule="quadratic")
