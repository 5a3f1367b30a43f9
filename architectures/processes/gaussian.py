"""The continuous-time gaussian process (Jabri et al. 2023, Sec. 3 and Alg. 1-2), written once.

Every function takes arrays of one namespace (numpy, torch or jax.numpy, via array_api_compat)
and never draws random numbers: t, eps, the self-conditioning keep mask and the sampler noise
come in as arrays from the backend adapter, so the same draws give the same numbers in both
backends. The network is a callable

    denoise(x_t, time_input, y, latents) -> (prediction, latents_out)

(latents None for families without latent self-conditioning). Shapes: x (B, ...) channels
last or first (the process never looks at the layout), t and gamma (B,), y (B,) or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from array_api_compat import array_namespace, device as _device

from architectures.processes import schedules
from architectures.processes.config import GaussianConfig

Denoise = Callable[[Any, Any, Any, Any], tuple[Any, Any]]


def _identity(a):
    return a


def _per_example(v, like):
    """(B,) -> (B, 1, ..., 1) broadcasting against `like`."""
    xp = array_namespace(v)
    return xp.reshape(v, (v.shape[0],) + (1,) * (like.ndim - 1))


def forward_passes_per_train_step(config: GaussianConfig, has_latents: bool = True) -> int:
    """Network forward passes in one training step: 2 with latent self-conditioning (the extra
    no-grad pass 1 that produces the latents; only a model with latents makes it), else 1."""
    return 2 if config.self_condition_rate > 0 and has_latents else 1


def forward_passes_per_sample_step(config: GaussianConfig, conditional: bool = True) -> int:
    """NFEs in one sampler step: classifier-free guidance adds the unconditional pass."""
    return 2 if (config.guidance_scale > 0 and conditional) else 1


@dataclass(frozen=True)
class SampleOut:
    x: Any  # x at the next time
    x0: Any  # the (clipped) data prediction at this step; the sample after the last step
    latents: Any  # the latents to feed back at the next step (None without latents)


class GaussianProcess:
    """x_t = sqrt(gamma(t)) x0 + sqrt(1 - gamma(t)) eps, with eps/x0/v prediction.

    The harness talks to every process family through the methods listed in
    architectures/processes/__init__.py (draws, NFE counts, training_loss, sample_step, sample).
    """

    def __init__(self, config: GaussianConfig):
        self.config = config

    # -- what the harness asks every process -------------------------------------------
    def forward_passes_per_train_step(self, has_latents: bool = True) -> int:
        return forward_passes_per_train_step(self.config, has_latents)

    def nfe_per_sample_step(self, conditional: bool = True) -> int:
        return forward_passes_per_sample_step(self.config, conditional)

    def nfe_per_sample(self, conditional: bool = True, steps: int | None = None) -> int:
        """Network evaluations of a full sampling run: steps x (2 with guidance)."""
        return (steps or self.config.sample_steps) * self.nfe_per_sample_step(conditional)

    def train_draws(self, rng, x_shape: tuple[int, ...]) -> dict:
        """numpy draws of one training step, keyed by training_loss's keyword names."""
        b = x_shape[0]
        return {
            "t": rng.uniform(0.0, 1.0, (b,)).astype("float32"),
            "eps": rng.standard_normal(x_shape).astype("float32"),
            "keep": (rng.uniform(0.0, 1.0, (b,)) < self.config.self_condition_rate).astype("float32"),
        }

    def sample_step_draws(self, rng, x_shape: tuple[int, ...], steps: int) -> list[dict]:
        """numpy draws of each sampler step, keyed by sample_step's keyword names (DDPM: noise)."""
        if self.config.sampler != "ddpm":
            return [{} for _ in range(steps)]
        return [{"noise": rng.standard_normal(x_shape).astype("float32")} for _ in range(steps)]

    # -- forward process -------------------------------------------------------------
    def gamma(self, t):
        """The training schedule."""
        return schedules.gamma(t, self.config)

    def sample_gamma(self, t):
        """The schedule the sampler walks (official RIN: trains on sigmoid/linear, infers on cosine)."""
        return schedules.gamma(t, self.config, self.config.sample_schedule or None)

    def network_time(self, t, gamma):
        """What the network sees as time: gamma for RIN (Sec. 3.2), t for the U-Nets."""
        return gamma if self.config.time_input == "gamma" else t

    def add_noise(self, x0, gamma, eps):
        g = _per_example(gamma, x0)
        xp = array_namespace(x0)
        return xp.sqrt(g) * x0 + xp.sqrt(1.0 - g) * eps

    # -- prediction targets and conversions -------------------------------------------
    def target(self, x0, eps, gamma):
        """The regression target of the configured prediction."""
        if self.config.prediction == "eps":
            return eps
        if self.config.prediction == "x0":
            return x0
        g = _per_example(gamma, x0)
        xp = array_namespace(x0)
        return xp.sqrt(g) * eps - xp.sqrt(1.0 - g) * x0  # v (Salimans & Ho 2022)

    def x0_eps(self, x_t, gamma, pred, clip: bool = True):
        """(x0_hat, eps_hat) from the network output. With clip, x0 is clipped to [-1, 1] and
        eps recomputed from it, so both describe the same point (the official sampler does this)."""
        xp = array_namespace(x_t)
        g = _per_example(gamma, x_t)
        sg, s1g = xp.sqrt(g), xp.sqrt(1.0 - g)
        kind = self.config.prediction
        if kind == "eps":
            x0, eps = (x_t - s1g * pred) / sg, pred
        elif kind == "x0":
            x0, eps = pred, (x_t - sg * pred) / s1g
        else:  # v: x0 = sqrt(g) x_t - sqrt(1-g) v, eps = sqrt(1-g) x_t + sqrt(g) v (spec)
            x0, eps = sg * x_t - s1g * pred, s1g * x_t + sg * pred
        if clip:
            x0 = xp.clip(x0, -1.0, 1.0)
            eps = (x_t - sg * x0) / s1g
        return x0, eps

    # -- training -----------------------------------------------------------------------
    def training_loss(self, denoise: Denoise, x0, t, eps, y=None, *, latents=None, keep=None,
                      stop_gradient: Callable = _identity):
        """MSE between the network output and the prediction target (Alg. 1).

        With self-conditioning (rate r > 0 and `latents` given as zeros of the latent shape):
        pass 1 on the whole batch with zero latents, stop-gradient on its output latents, zero
        them where keep == 0 (the caller draws keep ~ Bernoulli(r) per example), then pass 2
        with those latents gives the loss. No backprop through pass 1.
        """
        xp = array_namespace(x0)
        gamma = self.gamma(t)
        x_t = self.add_noise(x0, gamma, eps)
        time = self.network_time(t, gamma)
        if latents is not None and self.config.self_condition_rate > 0:
            if keep is None:
                raise ValueError("self-conditioning needs the keep mask (B,) drawn by the caller")
            prev = denoise(x_t, time, y, latents)[1]
            latents = stop_gradient(prev) * _per_example(xp.astype(keep, prev.dtype), prev)
            del prev  # eager torch: pass 1's autograd graph is freed before pass 2 runs
        pred, _ = denoise(x_t, time, y, latents)
        return xp.mean((pred - self.target(x0, eps, gamma)) ** 2)

    # -- sampling -----------------------------------------------------------------------
    def time_grid(self, steps: int | None = None) -> list[tuple[float, float]]:
        """[(t_k, t_next_k)] with t_k = 1 - k/N and t_next = max(1 - (k + 1 + td)/N, 0)."""
        n = steps or self.config.sample_steps
        td = self.config.time_difference
        return [(1.0 - k / n, max(1.0 - (k + 1 + td) / n, 0.0)) for k in range(n)]

    def predict(self, denoise: Denoise, x, time, y=None, latents=None, y_null=None):
        """One guided network evaluation: (pred, latents_out).

        Classifier-free guidance (Ho & Salimans 2022): pred = (1 + w) pred_c - w pred_u with the
        null label. eps, x0 and v are affine in one another at fixed x_t, so guiding the raw
        output equals guiding eps (before x0 clipping). The latents come from the conditional
        pass; guidance costs a second NFE.
        """
        pred, latents_out = denoise(x, time, y, latents)
        w = self.config.guidance_scale
        if w > 0 and y is not None:
            if y_null is None:
                raise ValueError("guidance_scale > 0 needs y_null (labels == num_classes)")
            pred_u, _ = denoise(x, time, y_null, latents)
            pred = (1.0 + w) * pred - w * pred_u
        return pred, latents_out

    def sample_step(self, denoise: Denoise, x, t_now, t_next, y=None, latents=None,
                    noise=None, y_null=None) -> SampleOut:
        """One step t_now -> t_next (both (B,)). DDPM needs `noise` shaped like x."""
        gamma, gamma_next = self.sample_gamma(t_now), self.sample_gamma(t_next)
        pred, latents_out = self.predict(denoise, x, self.network_time(t_now, gamma), y, latents, y_null)
        x0, eps = self.x0_eps(x, gamma, pred, clip=True)
        if self.config.sampler == "ddim":
            x_next = self.ddim_update(x0, eps, gamma_next)
        else:
            if noise is None:
                raise ValueError("the ddpm sampler needs noise drawn by the caller")
            x_next = self.ddpm_update(x, eps, gamma, gamma_next, noise)
        return SampleOut(x=x_next, x0=x0, latents=latents_out)

    def ddim_update(self, x0, eps, gamma_next):
        """Deterministic DDIM (Song et al. 2021, Eq. 12 with sigma = 0)."""
        xp = array_namespace(x0)
        g = _per_example(gamma_next, x0)
        return xp.sqrt(g) * x0 + xp.sqrt(1.0 - g) * eps

    def ddpm_variance(self, gamma, gamma_next):
        """alpha = g/g'; "large": 1 - alpha; "small": (1-g')/(1-g) (1-alpha) (posterior)."""
        xp = array_namespace(gamma)
        alpha = xp.clip(xp.exp(xp.log(gamma) - xp.log(gamma_next)), 0.0, 1.0)
        if self.config.ddpm_variance == "large":
            return alpha, 1.0 - alpha
        return alpha, (1.0 - gamma_next) / (1.0 - gamma) * (1.0 - alpha)

    def ddpm_update(self, x, eps, gamma, gamma_next, noise):
        """Ancestral step (Ho et al. 2020, Eq. 11): mean = alpha^(-1/2) (x - (1-alpha) eps / sqrt(1-g))."""
        xp = array_namespace(x)
        alpha, var = self.ddpm_variance(gamma, gamma_next)
        a, g, v = _per_example(alpha, x), _per_example(gamma, x), _per_example(var, x)
        mean = (x - (1.0 - a) * eps / xp.sqrt(1.0 - g)) / xp.sqrt(a)
        return mean + xp.sqrt(v) * noise

    def sample(self, denoise: Denoise, x_init, y=None, latents=None, noises=None, y_null=None,
               steps: int | None = None, step_draws: list[dict] | None = None):
        """The full sampler loop from x_init ~ N(0, I) at t = 1 (Alg. 2). `latents`: zeros of the
        latent shape (or None); the latents output at step k are the input at step k + 1.
        `noises`: one array like x per step for DDPM (or `step_draws` from sample_step_draws).
        Returns the last step's x0 prediction."""
        if step_draws is not None and noises is None and any("noise" in d for d in step_draws):
            noises = [d["noise"] for d in step_draws]
        xp = array_namespace(x_init)
        x, x0 = x_init, x_init
        batch = x_init.shape[0]
        for k, (t_now, t_next) in enumerate(self.time_grid(steps)):
            tn = xp.full((batch,), t_now, dtype=x.dtype, device=_device(x))
            tp = xp.full((batch,), t_next, dtype=x.dtype, device=_device(x))
            noise = None if noises is None else noises[k]
            out = self.sample_step(denoise, x, tn, tp, y, latents, noise, y_null)
            x, x0, latents = out.x, out.x0, out.latents
        return x0

