"""The phase-space process (AGM): closed-form bridge vs simulation and vs the moment ODEs, the
sampling-hop inversion, gDDIM with the exact force of gaussian data, backend parity of the
process math, and NFE as a suite parameter.

Reference values: the covariances, Cholesky factors, normalizer and hop coefficients are checked
against our own derivation (the moment ODEs of the linear SDE integrated numerically in float64,
then the official formulas of AM/dynamics.py and AM/samplers.py applied to those moments); the
gDDIM coefficients against scipy's adaptive quadrature of the official integrand (AB_fn).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import integrate

from architectures import registry
from architectures.phase_space import bridge
from architectures.phase_space.process import PhaseSpaceProcess
from architectures.phase_space.process_config import PhaseSpaceProcessConfig

DYN = [(3.0, 0.2, 1.0, 1.0), (3.0, 0.0, 1.0, 1.0), (2.0, 0.6, 1.5, 0.5)]  # (p, k, varx, varv)


def _drift(t, p):
    """dm = A m dt + b x1 dt + G dW of the bridge conditioned on x1 (module docstring of bridge.py)."""
    tau = 1.0 - t
    return np.array([[0.0, 1.0], [-4.0 / tau**2, -4.0 / tau]]), np.array([0.0, 4.0 / tau**2]), np.array([0.0, p * tau])


def _moments_ode(ts, p, k, varx, varv, x1=1.0, per_unit=400):
    """Mean and covariance at times ts, by RK4 from the prior (float64), in u = -log(1 - t) where
    the ODE is not stiff (d/du = (1 - t) d/dt cancels the 1/(1-t) gains)."""
    mu = np.zeros(2)
    cov = np.array([[varx, -k * np.sqrt(varx * varv)], [-k * np.sqrt(varx * varv), varv]])  # official sign

    def f(u, mu, cov):
        t = -np.expm1(-u)
        a, b, g = _drift(t, p)
        return (1 - t) * (a @ mu + b * x1), (1 - t) * (a @ cov + cov @ a.T + np.outer(g, g))

    out, u = [], 0.0
    for target in -np.log1p(-np.asarray(ts, np.float64)):
        n = max(1, int(np.ceil((target - u) * per_unit)))
        h = (target - u) / n
        for _ in range(n):
            k1 = f(u, mu, cov)
            k2 = f(u + h / 2, mu + h / 2 * k1[0], cov + h / 2 * k1[1])
            k3 = f(u + h / 2, mu + h / 2 * k2[0], cov + h / 2 * k2[1])
            k4 = f(u + h, mu + h * k3[0], cov + h * k3[1])
            mu = mu + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            cov = cov + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            u += h
        u = target
        out.append((mu.copy(), cov.copy()))
    return out


@pytest.mark.parametrize("dyn", DYN)
def test_marginal_moments_match_euler_maruyama_simulation(dyn):
    p, k, varx, varv = dyn
    rng = np.random.default_rng(0)
    n, steps, x1 = 20000, 2000, 0.8
    prior = np.linalg.cholesky([[varx, -k * np.sqrt(varx * varv)], [-k * np.sqrt(varx * varv), varv]])
    m = rng.standard_normal((n, 2)) @ prior.T
    checks, dt = {600: None, 1400: None, 1900: None}, 1.0 / steps
    for i in range(steps):
        if i in checks:
            checks[i] = m.copy()
        t = i * dt
        a, b, g = _drift(t, p)
        m = m + dt * (m @ a.T + b * x1) + g * np.sqrt(dt) * rng.standard_normal((n, 1))
    for i, sample in checks.items():
        t = np.array(i * dt)
        cx, cv = bridge.mean_coefficients(t)
        s_xx, s_xv, s_vv = bridge.covariance(t, *dyn)
        se = np.sqrt(np.diag(np.cov(sample.T)) / n)
        np.testing.assert_allclose(sample.mean(0), [cx * x1, cv * x1], atol=5 * se.max() + 2e-3)
        np.testing.assert_allclose(np.cov(sample.T), [[s_xx, s_xv], [s_xv, s_vv]], rtol=0.05, atol=2e-3)


@pytest.mark.parametrize("dyn", DYN)
def test_process_functions_match_the_moment_odes_and_official_formulas(dyn):
    """float32 closed forms vs float64 references at the same (float32) times."""
    ts = np.array([1e-5, 0.05, 0.3, 0.6, 0.9, 0.99, 0.999], np.float32)
    t64 = ts.astype(np.float64)
    p = dyn[0]
    for (mu, cov), t, i in zip(_moments_ode(t64, *dyn), t64, range(len(ts))):
        tau, a = 1 - t, 4 / (1 - t)
        np.testing.assert_allclose([c[i] for c in bridge.mean_coefficients(ts)], mu, rtol=1e-5, atol=1e-7)
        got = np.array([c[i] for c in bridge.covariance(ts, *dyn)], np.float64)
        want = np.array([cov[0, 0], cov[0, 1], cov[1, 1]])
        scale = np.sqrt([cov[0, 0] ** 2, cov[0, 0] * cov[1, 1], cov[1, 1] ** 2])  # Sigma_xv's scale: sqrt(xx vv)
        assert np.all(np.abs(got - want) <= 2e-4 * np.abs(want) + 1e-6 * scale), (t, got, want)
        # official get_cov in float64 (t.double()): float64 keeps det Sigma's ~9 cancelling digits
        s_xx, s_xv, s_vv = (c[i] for c in bridge.covariance(t64, *dyn))
        l_xv64 = s_xv / np.sqrt(s_xx)
        lower = np.array([[np.sqrt(s_xx), 0.0], [l_xv64, np.sqrt(s_vv - l_xv64**2)]])
        ell = -np.sqrt(s_xx / (s_xx * s_vv - s_xv**2))
        l_xx, l_xv, l_vv, ell32 = (c[i] for c in bridge.cholesky(ts, *dyn))
        np.testing.assert_allclose([l_xx, l_xv, l_vv, ell32], [lower[0, 0], lower[1, 0], lower[1, 1], ell],
                                   rtol=1e-4, atol=1e-6)
        g = p * tau  # official TVgMPC.normalizer (probODE) and samplers.get_est_x1
        norm = np.sqrt((a * (lower[0, 0] / tau + lower[1, 0])) ** 2 + (a * lower[1, 1] - 0.5 * g**2 * ell) ** 2) / tau
        np.testing.assert_allclose(bridge.normalizer(ts, *dyn)[i], norm, rtol=3e-4)  # float32 eps x 1/(1-t) at 0.999
        bb = (lower[1, 1] + 0.5 * g**2 * ell / a) / lower[1, 1]
        aa = (lower[0, 0] / tau + lower[1, 0] - bb * lower[1, 0]) / lower[0, 0]
        np.testing.assert_allclose([c[i] for c in bridge.hop_coefficients(ts, *dyn)],
                                   [aa, bb, 4 * tau**2 + a * (aa * mu[0] + bb * mu[1])], rtol=2e-4, atol=1e-6)


def test_gddim_coefficients_match_adaptive_quadrature_of_the_official_integrand():
    proc = PhaseSpaceProcess(PhaseSpaceProcessConfig(sample_steps=6, hop_time=0.9))
    ts, coef, dyn = proc.grid(), proc.gddim_coefficients(), (3.0, 0.2, 1.0, 1.0)
    norm = lambda s: float(bridge.normalizer(np.array(s), *dyn))
    for i in range(len(ts) - 1):
        q = min(i, 2)
        for j in range(3):
            if j > q:
                assert np.all(coef[i, j] == 0)
                continue
            basis = lambda s: np.prod([(s - ts[i - m]) / (ts[i - j] - ts[i - m]) for m in range(q + 1) if m != j])
            c01 = integrate.quad(lambda s: (ts[i + 1] - s) * norm(s) * basis(s), ts[i], ts[i + 1], epsabs=0, epsrel=1e-12)[0]
            c11 = integrate.quad(lambda s: norm(s) * basis(s), ts[i], ts[i + 1], epsabs=0, epsrel=1e-12)[0]
            np.testing.assert_allclose(coef[i, j], [c01, c11], rtol=1e-9, atol=1e-12)


def test_sampling_hop_inverts_the_force_label():
    """The label is affine in x1 at fixed m_t: the hop recovers x1 from (m_t, F) exactly."""
    proc = PhaseSpaceProcess(PhaseSpaceProcessConfig())
    rng = np.random.default_rng(1)
    x1 = rng.uniform(-1, 1, (6, 4, 4, 3))
    t = np.array([1e-5, 0.1, 0.4, 0.8, 0.95, 0.999])
    m, force = proc.marginal(x1, t, rng.standard_normal((6, 4, 4, 6)))
    np.testing.assert_allclose(proc.hop(m, t, force), x1, atol=1e-8)


# -- gDDIM with the exact force of gaussian data -------------------------------------------------
MU, S = np.array([0.5, -0.3]), np.array([[0.30, 0.12], [0.12, 0.20]])


def _exact_denoise(proc):
    """The network output whose force is E[label | m_t] for x1 ~ N(MU, S): the label is affine in
    x1 at fixed m, so the optimal force is the label at x1_hat = E[x1 | m_t] (gaussian conditioning)."""
    dyn = proc._dyn

    def denoise(m, time, y, latents):
        t = 1.0 - time
        out = np.empty(m.shape[:-1] + (2,))
        for b in range(m.shape[0]):
            tb = np.array(t[b])
            cx, cv = bridge.mean_coefficients(tb)
            s_xx, s_xv, s_vv = bridge.covariance(tb, *dyn)
            c = np.vstack([cx * np.eye(2), cv * np.eye(2)])
            noise = np.kron([[s_xx, s_xv], [s_xv, s_vv]], np.eye(2))
            mv = m[b].reshape(-1, 4)
            x1 = MU + (mv - c @ MU) @ np.linalg.solve(c @ S @ c.T + noise, c @ S)
            aa, bb, _ = bridge.hop_coefficients(tb, *dyn)
            x, v = mv[:, :2], mv[:, 2:]
            force = 4 * (1 - tb) ** 2 * x1 - bridge.g2p11(tb) * (aa * (x - cx * x1) + bb * (v - cv * x1))
            out[b] = (force / (bridge.normalizer(tb, *dyn) * (1 - tb))).reshape(out[b].shape)
        return out, None

    return denoise


def _output_moments(proc, steps):
    """The sampler is affine in its input noise here: mean and covariance exactly, from 5 runs."""
    basis = np.vstack([np.zeros(4), np.eye(4)]).reshape(5, 1, 1, 4)
    out = proc.sample(_exact_denoise(proc), basis, steps=steps).reshape(5, 2)
    lin = out[1:] - out[0]
    return out[0], lin.T @ lin


@pytest.mark.parametrize("order,output", [(2, "hop"), (1, "hop"), (2, "state")])
def test_gddim_with_the_exact_force_reproduces_gaussian_data(order, output):
    proc = PhaseSpaceProcess(PhaseSpaceProcessConfig(hop_time=0.999, gddim_order=order, output=output))
    errors = []
    for nfe in (5, 10, 20, 40):
        mean, cov = _output_moments(proc, nfe)
        errors.append(max(np.abs(mean - MU).max(), np.abs(cov - S).max()))
    # measured (r = 2): 0.74, 0.063, 0.0052, 0.00048 at 5, 10, 20, 40 NFE (entries of S are 0.12-0.3)
    assert errors[2] < 0.01 and errors[3] < 2e-3, errors
    assert all(b < a for a, b in zip(errors, errors[1:])), errors


# -- backend parity of the process math ---------------------------------------------------------
def _toy_net(xp):
    """A fixed smooth 'network' on [x, v] (channels last): out = tanh(x) * time + 0.3 v."""
    def denoise(m, time, y, latents):
        c = m.shape[-1] // 2
        return xp.tanh(m[..., :c]) * time[:, None, None, None] + 0.3 * m[..., c:], None
    return denoise


@pytest.mark.parametrize("sampler", ["gddim", "em"])
def test_process_math_agrees_across_numpy_torch_and_jax(sampler):
    import jax.numpy as jnp
    import torch
    cfg = PhaseSpaceProcessConfig(sampler=sampler, sample_steps=6)
    rng = np.random.default_rng(2)
    x1 = rng.uniform(-1, 1, (3, 4, 4, 2)).astype(np.float32)
    draws = PhaseSpaceProcess(cfg).train_draws(rng, x1.shape)
    noise = rng.standard_normal((3, 4, 4, 4)).astype(np.float32)
    step_draws = PhaseSpaceProcess(cfg).sample_step_draws(rng, noise.shape, 6)

    ref = PhaseSpaceProcess(cfg)
    loss_np = ref.training_loss(_toy_net(np), x1, draws["t"], draws["eps"])
    out_np = ref.sample(_toy_net(np), noise, step_draws=step_draws)

    jp = PhaseSpaceProcess(cfg, channel_axis=-1)
    loss_j = jp.training_loss(_toy_net(jnp), jnp.asarray(x1), jnp.asarray(draws["t"]), jnp.asarray(draws["eps"]))
    out_j = jp.sample(_toy_net(jnp), jnp.asarray(noise), step_draws=step_draws)

    first = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1)))
    tp = PhaseSpaceProcess(cfg, channel_axis=1)

    def torch_net(m, time, y, latents):  # the same toy net on channels-first tensors
        c = m.shape[1] // 2
        return torch.tanh(m[:, :c]) * time[:, None, None, None] + 0.3 * m[:, c:], None

    loss_t = tp.training_loss(torch_net, first(x1), torch.from_numpy(draws["t"]), first(draws["eps"]))
    t_draws = [{k: first(v) if v.ndim == 4 else v for k, v in d.items()} for d in step_draws]
    out_t = tp.sample(torch_net, first(noise), step_draws=t_draws)

    np.testing.assert_allclose([float(loss_j), float(loss_t)], [float(loss_np)] * 2, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out_j), out_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.moveaxis(out_t.numpy(), 1, -1), out_np, rtol=1e-4, atol=1e-5)


# -- registry and suites ------------------------------------------------------------------------
def test_presets_are_2c_in_c_out_and_name_their_backbone():
    entry = registry.get("phase_space")
    for name, preset in entry.load_presets().items():
        cfg = preset.config
        assert cfg.backbone in registry.names()
        assert cfg.input_shapes(1)["x"][0][-1] == 2 * cfg.network.out_channels == 6, name
        assert preset.provenance
    assert "NCSN++" in entry.preset("agm-cifar10").provenance
    with pytest.raises(ValueError, match="2C in and C out"):
        dataclasses.replace(entry.preset("agm-tiny").config,
                            network=dataclasses.replace(entry.preset("agm-tiny").config.network, output_channels=6))


# The released sampling commands (apple/ml-agm README, "CIFAR-10/Imagenet64 Generation and Evaluation"):
# sampling.py --solver gDDIM --pred-x1 --nfe N --T T, with the official gDDIM-r default 2.
RELEASED = {"agm-cifar10": (20, 0.9),  # NFE 20, FID 2.58
            "agm-imagenet64": (20, 0.99)}  # NFE 20, FID 10.55 (NFE 30: T 0.99; NFE 40: T 0.9)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_paper_presets_sample_as_the_released_commands(name):
    preset = registry.get("phase_space").preset(name)
    c = preset.config.process
    nfe, big_t = RELEASED[name]
    assert (c.sample_steps, c.hop_time, c.sampler, c.gddim_order, c.output) == (nfe, big_t, "gddim", 2, "hop")
    assert f"T {big_t}" in preset.provenance and "not verified" not in preset.provenance
    grid = PhaseSpaceProcess(c).time_grid()
    assert len(grid) == nfe and grid[-2][1] == big_t  # the grid ends at T, then one step to t_max


def test_nfe_is_a_suite_matrix_axis_and_recorded(tmp_path):
    from bench import suite_file
    from bench.measure.flops import nfe_per_sample

    suite = suite_file.loads("name: nfe\ncases:\n  - preset: agm-tiny\n    matrix:\n      override:\n"
                       "        - {process: {sample_steps: 5, hop_time: 0.4}}\n"
                       "        - {process: {sample_steps: 20, hop_time: 0.9}}\n")
    nfes = [nfe_per_sample(suite_file.resolve_config(c), "phase_space") for c in suite.cases]
    assert nfes == [5, 20]
    proc = PhaseSpaceProcess(suite_file.resolve_config(suite.cases[1]).process)
    assert len(proc.time_grid()) == 20 and proc.time_grid()[-1] == pytest.approx((0.9, 0.999))


def test_agm_recipe_is_ml_agms():
    """apple/ml-agm AM/runner.py + configs: AdamW, wd 0, cosine to 0, untuned warmup 2 / (1 - b2),
    clip 1, EMA 0.9999; CIFAR-10 lr 1e-3, 64 x 8 GPUs, 600k steps; ImageNet-64 lr 2e-4."""
    from bench.training.recipes import find_recipe

    entry = registry.get("phase_space")
    cifar = find_recipe(entry, "agm-cifar10")
    assert {k: cifar.optim[k] for k in ("optimizer", "lr", "weight_decay", "schedule", "warmup", "end_lr_factor",
                                        "clip", "ema")} == dict(optimizer="adamw", lr=1e-3, weight_decay=0.0,
                                                                schedule="cosine", warmup=2000, end_lr_factor=0.0,
                                                                clip=1.0, ema=0.9999)
    assert (cifar.batch, cifar.steps) == (512, 600_000) and "ml-agm" in cifar.source
    assert find_recipe(entry, "agm-imagenet64").optim["lr"] == 2e-4
    assert find_recipe(entry, "agm-tiny").optim == cifar.optim


def test_agm_nfe_suite_compares_agm_and_gaussian_on_one_backbone_and_budget():
    from bench import suite_file
    from bench.measure.flops import nfe_per_sample

    suite = suite_file.load("suites/agm-nfe.yaml")
    trained = [c for c in suite.cases if c.train]
    by_arch = {}
    for case in trained:
        cfg = suite_file.resolve_config(case)
        by_arch.setdefault(case.arch, []).append((case, cfg))
    assert sorted(by_arch) == ["phase_space", "songunet"]
    agm_cfg, gauss_cfg = by_arch["phase_space"][0][1], by_arch["songunet"][0][1]
    assert agm_cfg.backbone == "songunet"
    assert dataclasses.replace(agm_cfg.network, in_channels=3, output_channels=0, process=gauss_cfg.process) == gauss_cfg
    assert len({str(c.train.to_dict()) for c in trained}) == 1 and len({c.batch for c in trained}) == 1
    for arch, cases in by_arch.items():
        process = registry.get(arch).process
        assert sorted(nfe_per_sample(cfg, process) for _, cfg in cases) == [5, 10, 20], arch


def test_training_and_quality_data_have_the_datas_channels():
    """The network sees [x, v] (6 channels); the dataset, the training batches and the quality
    reference are x (3): a suite case with `train:` and `quality` on an AGM preset runs."""
    from bench.quality.measure import reference_data
    from bench.quality.settings import QualitySettings
    from bench.training.run import training_data

    cfg = registry.get("phase_space").preset("agm-songunet-tiny").config
    process = PhaseSpaceProcess(cfg.process)
    x, y, context = training_data({"dataset": "shapes", "root": None, "limit": 8}, cfg, 0, process)
    assert x.shape == (8, 16, 16, 3) and y is None and context is None
    assert reference_data(QualitySettings(n=2), cfg, 0, 4, process).shape == (4, 16, 16, 3)
