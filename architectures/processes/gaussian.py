"""The continuous-time gaussian process (Jabri et al. 2023, Sec. 3 and Alg. 1-2), written once.

Every function takes arrays of one namespace (numpy, torch or jax.numpy, via array_api_compat)
and never draws random numbers: t, eps, the self-conditioning keep mask and the sampler noise
come in as arrays from the backend adapter, so the same draws give the same numbers in both
backends. The network is a callable

    denoise(x_t, time_input, y, latents) -> (prediction, latents_out)

(latents None for families without latent self-conditioning). A network that learns its
variance (iDDPM) returns the prediction as a pair (mean prediction, v): the adapter splits its
output channels, since only the adapter knows the layout. Shapes: x (B, ...) channels
last or first (the process never looks at the layout), t and gamma (B,), y (B,) or None.
This file: the schedule, noising, targets and the training loss; gaussian_sampler.py: the sampler.
"""

from __future__ import annotations

import math
from typing import Callable

from array_api_compat import array_namespace

from architectures.processes import discrete, guidance, schedules, vlb
from architectures.processes.coefficients import Level, StepTerms, as_level
from architectures.processes.config import GaussianConfig
from architectures.processes.gaussian_sampler import Denoise, GaussianSampler, SampleOut, _per_example, _split

# SampleOut is public here too: `from architectures.processes.gaussian import GaussianProcess, SampleOut`
__all__ = ["GaussianProcess", "SampleOut", "forward_passes_per_sample_step", "forward_passes_per_train_step"]


def _identity(a):
    return a


def forward_passes_per_train_step(config: GaussianConfig, has_latents: bool = True) -> int:
    """Network forward passes in one training step: 2 with latent self-conditioning (the extra
    no-grad pass 1 that produces the latents; only a model with latents makes it), else 1."""
    return 2 if config.self_condition_rate > 0 and has_latents else 1


def forward_passes_per_sample_step(config: GaussianConfig, conditional: bool = True) -> int:
    """NFEs in one sampler step: classifier-free guidance adds the unconditional pass."""
    return 2 if (config.guidance_scale > 0 and conditional) else 1


class GaussianProcess(GaussianSampler):
    """x_t = sqrt(gamma(t)) x0 + sqrt(1 - gamma(t)) eps, with eps/x0/v prediction.

    The harness talks to every process family through the methods listed in
    architectures/processes/__init__.py (draws, NFE counts, training_loss, sample_step, sample).
    """

    def __init__(self, config: GaussianConfig, channel_axis: int = -1):
        self.config = config
        self.tables = discrete.Tables(config) if config.timesteps else None  # discrete time (DDPM/ADM)
        self.channel_axis = channel_axis  # the layout of x; this process never looks at it

    # -- what the harness asks every process -------------------------------------------
    def forward_passes_per_train_step(self, has_latents: bool = True) -> int:
        return forward_passes_per_train_step(self.config, has_latents)

    def nfe_per_sample_step(self, conditional: bool = True) -> int:
        return forward_passes_per_sample_step(self.config, conditional)

    def nfe_per_sample(self, conditional: bool = True, steps: int | None = None) -> int:
        """Network evaluations of a full sampling run: steps x (2 with guidance)."""
        return (steps or self.config.sample_steps) * self.nfe_per_sample_step(conditional)

    def data_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The data's shape from the network input's: the same (x_t is shaped like x0)."""
        return tuple(x_shape)

    def prior(self, noise):
        """The sampler's first state from N(0, I) noise: x_1 ~ N(0, I) itself."""
        return noise

    def initial_carry(self, x):
        """No sampler state beyond x (and the latents)."""
        return None

    def train_draws(self, rng, x_shape: tuple[int, ...]) -> dict:
        """numpy draws of one training step, keyed by training_loss's keyword names."""
        b = x_shape[0]
        t = rng.integers(0, self.config.timesteps, b) if self.tables else rng.uniform(0.0, 1.0, (b,))
        out = {
            "t": t.astype("float32"),  # discrete time: the integer step k, as a float
            "eps": rng.standard_normal(x_shape).astype("float32"),
            "keep": (rng.uniform(0.0, 1.0, (b,)) < self.config.self_condition_rate).astype("float32"),
        }
        if self.config.cond_drop_prob > 0:  # drawn last: without label dropout the draws are as before
            out["cond_keep"] = (rng.uniform(0.0, 1.0, (b,)) >= self.config.cond_drop_prob).astype("float32")
        return out

    def sample_step_draws(self, rng, x_shape: tuple[int, ...], steps: int, only: int | None = None) -> list[dict]:
        """numpy draws of each sampler step, keyed by sample_step's keyword names (DDPM: noise);
        `only` = k: step k's alone (a one-item list)."""
        count = steps if only is None else 1
        if self.config.sampler != "ddpm":
            return [{} for _ in range(count)]
        return [{"noise": rng.standard_normal(x_shape).astype("float32")} for _ in range(count)]

    # -- forward process -------------------------------------------------------------
    def level(self, t) -> Level:
        """The training schedule's coefficients at t (discrete time: float64 tables, cast per gather)."""
        if self.tables:
            rows = self.tables.rows(t)
            return Level(*(rows[name] for name in Level._fields))
        return as_level(schedules.gamma(t, self.config))

    def sample_level(self, t) -> Level:
        """The coefficients of the schedule the sampler walks (see sample_gamma)."""
        if self.tables:
            return self.level(t)
        return as_level(self.sample_gamma(t))

    def gamma(self, t):
        """The training schedule (discrete time: alphas_cumprod[k], t = -1 gives 1)."""
        if self.tables:
            return self.tables.take(self.tables.gamma, t)
        return schedules.gamma(t, self.config)

    def sample_gamma(self, t):
        """The schedule the sampler walks (official RIN: trains on sigmoid/linear, infers on cosine)."""
        if self.tables:
            return self.gamma(t)
        return schedules.gamma(t, self.config, self.config.sample_schedule or None)

    def network_time(self, t, gamma):
        """What the network sees as time: gamma for RIN (Sec. 3.2); t for the U-Nets, which in
        discrete time is ADM's integer step k (times 1000 / T with improved-diffusion's rescale)."""
        if self.config.time_input == "gamma":
            return gamma
        if self.config.rescale_timesteps:
            return t * (1000.0 / self.config.timesteps)
        return t

    def step_terms(self, t_now, t_next, gamma, gamma_next) -> StepTerms:
        """The step t_now -> t_next, alpha = g / g'. Discrete time reads float64-accurate tables
        (respaced steps included: alpha = the ratio of the two alphas_cumprod, as guided-diffusion's
        SpacedDiffusion); continuous time computes them from the gamma arrays."""
        xp = array_namespace(t_now)
        if self.tables:
            now, nxt = self.tables.rows(t_now), self.tables.rows(t_next)
            d = self.tables.ratio(now, nxt)
            return StepTerms(xp.exp(d), -xp.expm1(d), now["one_minus"], nxt["one_minus"], nxt["sqrt_gamma"])
        alpha = xp.clip(xp.exp(xp.log(gamma) - xp.log(gamma_next)), 0.0, 1.0)
        return StepTerms(alpha, 1.0 - alpha, 1.0 - gamma, 1.0 - gamma_next, xp.sqrt(gamma_next))

    def add_noise(self, x0, gamma, eps):
        """sqrt(g) x0 + sqrt(1 - g) eps; gamma: a Level or the gamma array."""
        lev = as_level(gamma)
        return _per_example(lev.sqrt_gamma, x0) * x0 + _per_example(lev.sqrt_one_minus, x0) * eps

    # -- prediction targets and conversions -------------------------------------------
    def target(self, x0, eps, gamma):
        """The regression target of the configured prediction."""
        if self.config.prediction == "eps":
            return eps
        if self.config.prediction == "x0":
            return x0
        lev = as_level(gamma)
        return _per_example(lev.sqrt_gamma, x0) * eps - _per_example(lev.sqrt_one_minus, x0) * x0  # v (Salimans & Ho 2022)

    def x0_eps(self, x_t, gamma, pred, clip: bool = True):
        """(x0_hat, eps_hat) from the network output. With clip, x0 is clipped to [-1, 1] and
        eps recomputed from it, so both describe the same point (the official sampler does this).
        gamma: a Level or the gamma array. eps <-> x0 as ADM's predict_start_from_noise and
        _predict_eps_from_xstart (1/sqrt(g) and sqrt(1/g - 1) from its float64 tables)."""
        xp = array_namespace(x_t)
        sg, s1g, sr, srm1 = (_per_example(a, x_t) for a in as_level(gamma)[1:])
        kind = self.config.prediction
        if kind == "eps":
            x0, eps = sr * x_t - srm1 * pred, pred
        elif kind == "x0":
            x0, eps = pred, (sr * x_t - pred) / srm1
        else:  # v: x0 = sqrt(g) x_t - sqrt(1-g) v, eps = sqrt(1-g) x_t + sqrt(g) v (spec)
            x0, eps = sg * x_t - s1g * pred, s1g * x_t + sg * pred
        if clip:
            x0 = xp.clip(x0, -1.0, 1.0)
            eps = (sr * x_t - x0) / srm1
        return x0, eps

    # -- training -----------------------------------------------------------------------
    def training_loss(self, denoise: Denoise, x0, t, eps, y=None, *, latents=None, keep=None, cond_keep=None,
                      stop_gradient: Callable = _identity):
        """MSE between the network output and the prediction target (Alg. 1).

        With self-conditioning (rate r > 0 and `latents` given as zeros of the latent shape):
        pass 1 on the whole batch with zero latents, stop-gradient on its output latents, zero
        them where keep == 0 (the caller draws keep ~ Bernoulli(r) per example), then pass 2
        with those latents gives the loss. No backprop through pass 1.
        Label dropout (cond_drop_prob > 0, classifier-free guidance training): where cond_keep == 0
        the example's label is the null label in every pass (DiT's LabelEmbedder.token_drop).
        """
        xp = array_namespace(x0)
        if cond_keep is not None and y is not None and self.config.null_label < 0:
            raise ValueError("label dropout needs process.null_label: the model config fills it from num_classes "
                             "(architectures.processes.config.with_null_label)")
        y = guidance.dropped(y, cond_keep, self.config.null_label) if y is not None else y
        lev = self.level(t)
        x_t = self.add_noise(x0, lev, eps)
        time = self.network_time(t, lev.gamma)
        if latents is not None and self.config.self_condition_rate > 0:
            if keep is None:
                raise ValueError("self-conditioning needs the keep mask (B,) drawn by the caller")
            prev = denoise(x_t, time, y, latents)[1]
            latents = stop_gradient(prev) * _per_example(xp.astype(keep, prev.dtype), prev)
            del prev  # eager torch: pass 1's autograd graph is freed before pass 2 runs
        pred, v = _split(denoise(x_t, time, y, latents)[0])
        loss = xp.mean((pred - self.target(x0, eps, lev)) ** 2)
        if v is None:
            return loss
        # L_hybrid (iDDPM Sec. 3.1): the VLB term trains v only; the mean gets stop-gradient.
        # L_vlb = T E_t[L_t], so lambda L_vlb = vlb_weight * T * mean(L_t): guided-diffusion's plain
        # `mse + vb` at T = 1000 and improved-diffusion's `vb * T / 1000` (RESCALED_MSE).
        if not self.tables:
            raise ValueError("a learned variance needs discrete time (process.timesteps > 0): the VLB term "
                             "and beta~ are defined per discrete step")
        vb = self.vb_terms(x0, x_t, t, stop_gradient(pred), v)
        return loss + (self.config.vlb_weight * self.config.timesteps) * xp.mean(vb)

    def vb_terms(self, x0, x_t, t, pred, v):
        """L_t in bits per dimension, (B,): the decoder NLL at k = 0, else KL(q || p_theta) with
        p's mean from `pred` (unclipped x0) and its variance from v (guided-diffusion _vb_terms_bpd)."""
        xp = array_namespace(x0)
        terms = self.step_terms(t, t - 1.0, None, None)
        t_clip = xp.clip(t, 1.0, None)  # beta~_0 = 0: the official log-variance table reuses beta~_1
        c = self.step_terms(t_clip, t_clip - 1.0, None, None)
        log_post = _per_example(xp.log(c.one_minus_next / c.one_minus * c.beta), x0)
        x0_hat, _ = self.x0_eps(x_t, self.level(t), pred, clip=False)
        true_mean, model_mean = self.posterior_mean(x0, x_t, terms), self.posterior_mean(x0_hat, x_t, terms)
        model_log_var = vlb.learned_log_variance(v, _per_example(xp.log(terms.beta), x0), log_post)
        kl = vlb.mean_flat(vlb.normal_kl(true_mean, log_post, model_mean, model_log_var)) / math.log(2.0)
        nll = -vlb.mean_flat(vlb.discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var))
        return xp.where(t == 0, nll / math.log(2.0), kl)
