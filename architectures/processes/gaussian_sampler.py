"""The gaussian process's sampler (Jabri et al. 2023, Alg. 2): the time grid, one guided network
evaluation, DDPM and DDIM steps and the loop. A base class of GaussianProcess (gaussian.py),
which supplies the schedule: sample_level, network_time, step_terms, x0_eps and add_noise.
The network callable and the array conventions: gaussian.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from array_api_compat import array_namespace, device as _device

from architectures.processes import discrete, guidance, vlb
from architectures.processes.coefficients import StepTerms

Denoise = Callable[[Any, Any, Any, Any], tuple[Any, Any]]


def _split(pred):
    """(mean prediction, v of Eq. 15 or None)."""
    return pred if isinstance(pred, tuple) else (pred, None)


def _per_example(v, like):
    """(B,) -> (B, 1, ..., 1) broadcasting against `like`."""
    xp = array_namespace(v)
    return xp.reshape(v, (v.shape[0],) + (1,) * (like.ndim - 1))


@dataclass(frozen=True)
class SampleOut:
    x: Any  # x at the next time
    x0: Any  # the (clipped) data prediction at this step; the sample after the last step
    latents: Any  # the latents to feed back at the next step (None without latents)
    nfe: int = 1  # network evaluations this step made (guidance: 2), counted as they ran
    carry: Any = None  # sampler state beyond x (e.g. a multistep force history), fed to the next step


class GaussianSampler:
    """The sampling methods of GaussianProcess (see the module docstring)."""

    # -- sampling -----------------------------------------------------------------------
    def time_grid(self, steps: int | None = None) -> list[tuple[float, float]]:
        """[(t_k, t_next_k)] with t_k = 1 - k/N and t_next = max(1 - (k + 1 + td)/N, 0).
        Discrete time: the respaced original indices, descending, the last step going to -1."""
        n = steps or self.config.sample_steps
        if self.tables:
            ks = discrete.respaced(self.config.timesteps, n)[::-1]
            return [(float(k), float(k_next)) for k, k_next in zip(ks, ks[1:] + [-1])]
        td = self.config.time_difference
        return [(1.0 - k / n, max(1.0 - (k + 1 + td) / n, 0.0)) for k in range(n)]

    def predict(self, denoise: Denoise, x, time, y=None, latents=None, y_null=None):
        """One guided network evaluation: (pred, latents_out).

        Classifier-free guidance (Ho & Salimans 2022, guidance.py): pred = (1 + w) pred_c - w pred_u
        with the null label, in one batch-2B call or two batch-B calls (`guidance_mode`), on the
        first `guided_channels` channels or all. eps, x0 and v are affine in one another at fixed
        x_t, so guiding the raw output equals guiding eps (before x0 clipping). The latents come
        from the conditional half; guidance costs a second NFE.
        """
        w = self.config.guidance_scale
        if not (w > 0 and y is not None):
            return denoise(x, time, y, latents)
        if y_null is None:
            raise ValueError("guidance_scale > 0 needs y_null (labels == num_classes)")
        out_c, out_u, latents_out = guidance.evaluate(denoise, x, time, y, y_null, latents, self.config.guidance_mode)
        (pred_c, v), (pred_u, _) = _split(out_c), _split(out_u)
        pred = guidance.mix(pred_c, pred_u, w, self.config.guided_channels, self.channel_axis)
        return (pred if v is None else (pred, v)), latents_out  # a learned variance: the conditional one (GLIDE)

    def sample_step(self, denoise: Denoise, x, t_now, t_next, y=None, latents=None,
                    noise=None, y_null=None, carry=None) -> SampleOut:
        """One step t_now -> t_next (both (B,)). DDPM needs `noise` shaped like x. A learned
        variance (iDDPM Eq. 15) replaces the fixed one in DDPM steps; DDIM ignores it. No carry."""
        calls = []

        def counted(*args):
            calls.append(guidance.rows(args[0]) // guidance.rows(x))  # a batch-2B call evaluates 2 NFEs
            return denoise(*args)

        lev, lev_next = self.sample_level(t_now), self.sample_level(t_next)
        pred, latents_out = self.predict(counted, x, self.network_time(t_now, lev.gamma), y, latents, y_null)
        pred, v = _split(pred)
        x0, eps = self.x0_eps(x, lev, pred, clip=True)
        if self.config.sampler == "ddim":
            x_next = self.ddim_update(x0, eps, lev_next)
        else:
            if noise is None:
                raise ValueError("the ddpm sampler needs noise drawn by the caller")
            x_next = self.ddpm_update(x, x0, self.step_terms(t_now, t_next, lev.gamma, lev_next.gamma), noise, v)
        return SampleOut(x=x_next, x0=x0, latents=latents_out, nfe=sum(calls))

    def ddim_update(self, x0, eps, gamma_next):
        """Deterministic DDIM (Song et al. 2021, Eq. 12 with sigma = 0); gamma_next: a Level or gamma."""
        return self.add_noise(x0, gamma_next, eps)

    def ddpm_variance(self, gamma, gamma_next, terms=None):
        """(alpha, variance), alpha = g/g'; "large": beta = 1 - alpha; "small": the posterior
        beta~ = (1-g')/(1-g) beta. `terms`: step_terms(...) (default: from the gammas)."""
        s = terms or self.step_terms(gamma, gamma_next, gamma, gamma_next)
        return s.alpha, s.beta if self.config.ddpm_variance == "large" else s.one_minus_next / s.one_minus * s.beta

    def posterior_mean(self, x0, x_t, terms: StepTerms):
        """The mean of q(x_t' | x_t, x0) (Ho et al. 2020, Eq. 7), as ADM's posterior_mean_coef1/2:
        beta sqrt(g') / (1 - g) x0 + (1 - g') sqrt(alpha) / (1 - g) x_t. Equal to Eq. 11's
        alpha^(-1/2) (x_t - beta eps / sqrt(1 - g)), which cancels in float32 as alpha -> 0."""
        xp = array_namespace(x_t)
        c0 = terms.beta * terms.sqrt_gamma_next / terms.one_minus
        ct = terms.one_minus_next * xp.sqrt(terms.alpha) / terms.one_minus
        return _per_example(c0, x0) * x0 + _per_example(ct, x_t) * x_t

    def ddpm_update(self, x, x0, terms: StepTerms, noise, v=None):
        """Ancestral step (Ho et al. 2020, Eq. 11): the posterior mean at the (clipped) x0, plus
        noise. With v, log-variance = Eq. 15 between beta and beta~ (beta~ = 0 at the last step,
        where the noise does not matter: beta stands in)."""
        xp = array_namespace(x)
        mean = self.posterior_mean(x0, x, terms)
        if v is None:
            return mean + xp.sqrt(_per_example(self.ddpm_variance(None, None, terms)[1], x)) * noise
        post = terms.one_minus_next / terms.one_minus * terms.beta
        log_post = xp.log(xp.where(post > 0, post, terms.beta))
        log_var = vlb.learned_log_variance(v, _per_example(xp.log(terms.beta), x), _per_example(log_post, x))
        return mean + xp.exp(0.5 * log_var) * noise

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
