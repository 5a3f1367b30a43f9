"""The multi-resolution process of Matryoshka Diffusion (Gu et al. 2024, Sec. 3.1-3.2), written once
for numpy, torch and jax.numpy (array_api_compat).

x is a list, one array per resolution, highest first (the NestedUNet's input and output). Per
resolution the math is the gaussian process's (gaussian.py: add_noise, x0_eps, DDPM/DDIM
updates); what is new here:
- targets: the data x0 (highest resolution) average-pooled down to every resolution;
- one timestep per example shared by all resolutions, independent noise per resolution;
- the resolution-dependent shift SNR_r(t) = SNR(t) / s_r^p, s_r = side_r / lowest side
  (Sec. 3.2, ml-mdm samplers.get_schedule_shifted), i.e. gamma_r = gamma / (gamma + s^p (1 - gamma));
- the network predicts v; the loss is the eps MSE recovered from v, summed over resolutions with
  the configured weights (ml-mdm: loss_target_type DDPM, use_double_loss, multi_res_weights).
Time is discrete as in ml-mdm: t = k / T with k in 1..T picks gamma_k; the network sees k - 1,
passed as t - 1/T (the model scales it by T). Randomness comes in as arrays from the caller.
The process never looks at the layout: pooling factors come from the shapes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from array_api_compat import array_namespace, device as _device

from architectures.processes import guidance, schedules
from architectures.processes.config import GaussianConfig
from architectures.processes.gaussian import GaussianProcess, SampleOut
from architectures.processes.multires_config import MultiResConfig


def _identity(a):
    return a


def avg_pool(x, shape: tuple[int, ...]):
    """Average-pool x down to `shape` (every axis whose size differs shrinks by an integer factor)."""
    xp = array_namespace(x)
    split, reduce = [], []
    for axis, (big, small) in enumerate(zip(x.shape, shape)):
        if big == small:
            split.append(big)
            continue
        if big % small:
            raise ValueError(f"cannot pool axis {axis} of size {big} to {small}")
        split += [small, big // small]
        reduce.append(len(split) - 1)
    return xp.mean(xp.reshape(x, tuple(split)), axis=tuple(reduce))


def shift_gamma(gamma, scale: float, power: float):
    """gamma_r with SNR_r = SNR / scale^power: gamma / (gamma + scale^p (1 - gamma))."""
    f = float(scale) ** float(power)
    return gamma if f == 1.0 else gamma / (gamma + f * (1.0 - gamma))


class MultiResProcess:
    """The harness talks to it through the methods of architectures/processes/__init__.py."""

    def __init__(self, config: MultiResConfig, channel_axis: int = -1):
        self.config = config
        self.channel_axis = channel_axis  # the layout of x; this process never looks at it
        # Per-resolution math: v-prediction, ancestral steps with the posterior ("small") variance,
        # which equals ml-mdm's get_prediction_xt_last (mean x0 beta sqrt(g')/(1-g) + x sqrt(a)(1-g')/(1-g)).
        self.gaussian = GaussianProcess(GaussianConfig(prediction="v", sampler=config.sampler, ddpm_variance="small",
                                                       sample_steps=config.sample_steps,
                                                       guidance_scale=config.guidance_scale))

    # -- what the harness asks every process -------------------------------------------
    def forward_passes_per_train_step(self, has_latents: bool = True) -> int:
        return 1

    def nfe_per_sample_step(self, conditional: bool = True) -> int:
        return 2 if self.config.guidance_scale > 0 and conditional else 1

    def nfe_per_sample(self, conditional: bool = True, steps: int | None = None) -> int:
        return (steps or self.config.sample_steps) * self.nfe_per_sample_step(conditional)

    def data_shape(self, x_shape):
        """The data (and prediction) shapes are the network inputs' (one per resolution)."""
        return [tuple(s) for s in x_shape] if isinstance(x_shape, list) else tuple(x_shape)

    def prior(self, noise):
        """The sampler starts from N(0, I) at every resolution."""
        return noise

    def initial_carry(self, x):
        return None

    def shapes(self, x_shape) -> list[tuple[int, ...]]:
        """One shape per resolution from the model's x shapes (a list) or the data's (highest side)."""
        if isinstance(x_shape, list):
            return [tuple(s) for s in x_shape]
        res = self.config.resolutions
        if not res:
            return [tuple(x_shape)]
        b, *rest = x_shape  # every non-batch axis of the highest side shrinks with the resolution
        return [(b, *(d * r // res[0] if d == res[0] else d for d in rest)) for r in res]

    def train_draws(self, rng, x_shape) -> dict:
        """k ~ U{1..T} as t = k / T (ml-mdm: randint(0, T) + 1) and eps per resolution; with
        cond_drop_prob > 0, cond_keep flags (0: the example trains on the null condition, guidance.dropped)."""
        shapes = self.shapes(x_shape)
        b, steps = shapes[0][0], self.config.steps
        out = {"t": (rng.integers(1, steps + 1, (b,)) / steps).astype("float32"),
               "eps": [rng.standard_normal(s).astype("float32") for s in shapes]}
        if self.config.cond_drop_prob > 0:
            out["cond_keep"] = (rng.uniform(size=(b,)) >= self.config.cond_drop_prob).astype("float32")
        return out

    def sample_step_draws(self, rng, x_shape, steps: int, only: int | None = None) -> list[dict]:
        """DDPM noise per resolution for each step (`only` = k: step k's alone)."""
        count = steps if only is None else 1
        if self.config.sampler != "ddpm":
            return [{} for _ in range(count)]
        shapes = self.shapes(x_shape)
        return [{"noise": [rng.standard_normal(s).astype("float32") for s in shapes]} for _ in range(count)]

    # -- schedule -------------------------------------------------------------------------
    def gamma(self, t):
        return xp_clip(schedules.cosine_discrete(t, self.config.steps))

    def gammas(self, t, xs) -> list:
        """gamma_r(t) of every resolution: the schedule shifted by (side_r / lowest side)^p."""
        sides = self.config.resolutions or (1,) * len(xs)
        g = self.gamma(t)
        return [shift_gamma(g, side / min(sides), self.config.shift_power) for side in sides]

    def network_time(self, t):
        return t - 1.0 / self.config.steps  # gamma_k is read at k, the network sees k - 1

    def weights(self, n: int) -> list[float]:
        return list(self.config.weights) if self.config.weights else [1.0] * n

    # -- training -------------------------------------------------------------------------
    def targets(self, x0, eps: list) -> list:
        """x0 (the highest resolution; a list: its first entry) pooled to each eps shape."""
        x0 = x0[0] if isinstance(x0, (list, tuple)) else x0
        return [x0 if tuple(e.shape) == tuple(x0.shape) else avg_pool(x0, tuple(e.shape)) for e in eps]

    def training_loss(self, denoise, x0, t, eps, y=None, *, cond_keep=None, latents=None,
                      stop_gradient: Callable = _identity):
        xp = array_namespace(t)
        x0s = self.targets(x0, eps)
        gs = self.gammas(t, x0s)
        x_t = [self.gaussian.add_noise(x, g, e) for x, g, e in zip(x0s, gs, eps)]
        preds, _ = denoise(x_t, self.network_time(t), guidance.dropped(y, cond_keep, self.config.null_label), None)
        loss = 0.0
        for w, x, g, v, e in zip(self.weights(len(eps)), x_t, gs, preds, eps):
            eps_hat = self.gaussian.x0_eps(x, g, v, clip=False)[1]
            loss = loss + w * xp.mean((eps_hat - e) ** 2)
        return loss

    def losses(self, denoise, x0, t, eps, y=None) -> list:
        """The unweighted eps MSE of each resolution (for monitoring)."""
        xp = array_namespace(t)
        x0s = self.targets(x0, eps)
        gs = self.gammas(t, x0s)
        x_t = [self.gaussian.add_noise(x, g, e) for x, g, e in zip(x0s, gs, eps)]
        preds, _ = denoise(x_t, self.network_time(t), y, None)
        return [xp.mean((self.gaussian.x0_eps(x, g, v, clip=False)[1] - e) ** 2)
                for x, g, v, e in zip(x_t, gs, preds, eps)]

    # -- sampling -------------------------------------------------------------------------
    def timesteps(self, steps: int | None = None) -> list[int]:
        """ml-mdm set_timesteps: round(arange(n + 1) (T + 1) / (n + 1)), descending, ending at 0."""
        n, big_t = steps or self.config.sample_steps, self.config.steps
        ks = np.round(np.arange(n + 1) * (big_t + 1) / (n + 1))[::-1]
        return [int(k) for k in ks]

    def time_grid(self, steps: int | None = None) -> list[tuple[float, float]]:
        ks, big_t = self.timesteps(steps), self.config.steps
        return [(ks[i] / big_t, ks[i + 1] / big_t) for i in range(len(ks) - 1)]

    def predict(self, denoise, xs, time, y=None, y_null=None) -> list:
        """Guided predictions of every resolution: (1 + w) pred_c - w pred_u (Ho & Salimans 2022),
        in one batch-2B call or two batch-B calls (`guidance_mode`, guidance.py)."""
        w = self.config.guidance_scale
        if not (w > 0 and y is not None):
            return denoise(xs, time, y, None)[0]
        if y_null is None:
            raise ValueError("guidance_scale > 0 needs y_null (labels == num_classes)")
        cond, uncond, _ = guidance.evaluate(denoise, xs, time, y, y_null, None, self.config.guidance_mode)
        return [guidance.mix(p, u, w) for p, u in zip(cond, uncond)]

    def sample_step(self, denoise, x, t_now, t_next, y=None, latents=None, noise=None, y_null=None,
                    carry=None) -> SampleOut:
        """One step of every resolution in parallel; x (and DDPM's noise) are lists."""
        g_now, g_next = self.gammas(t_now, x), self.gammas(t_next, x)
        preds = self.predict(denoise, x, self.network_time(t_now), y, y_null)
        xs, x0s = [], []
        for i, (xi, g, gn, v) in enumerate(zip(x, g_now, g_next, preds)):
            x0, eps = self.gaussian.x0_eps(xi, g, v, clip=True)
            if self.config.sampler == "ddim":
                xs.append(self.gaussian.ddim_update(x0, eps, gn))
            else:
                if noise is None:
                    raise ValueError("the ddpm sampler needs noise drawn by the caller")
                terms = self.gaussian.step_terms(g, gn, g, gn)  # continuous: from this resolution's gammas
                xs.append(self.gaussian.ddpm_update(xi, x0, terms, noise[i]))
            x0s.append(x0)
        guided = self.config.guidance_scale > 0 and y is not None
        return SampleOut(x=xs, x0=x0s, latents=None, nfe=2 if guided else 1)

    def sample(self, denoise, x_init, y=None, latents=None, noises=None, y_null=None, steps: int | None = None,
               step_draws: list[dict] | None = None) -> list:
        """The full sampler from x_init (a list, N(0, I) per resolution); returns the last x0 list."""
        if step_draws is not None and noises is None and any("noise" in d for d in step_draws):
            noises = [d["noise"] for d in step_draws]
        xp = array_namespace(x_init[0])
        x, x0, batch = list(x_init), list(x_init), x_init[0].shape[0]
        for k, (t_now, t_next) in enumerate(self.time_grid(steps)):
            tn = xp.full((batch,), t_now, dtype=x[0].dtype, device=_device(x[0]))
            tp = xp.full((batch,), t_next, dtype=x[0].dtype, device=_device(x[0]))
            out = self.sample_step(denoise, x, tn, tp, y, None, None if noises is None else noises[k], y_null)
            x, x0 = out.x, out.x0
        return x0


def xp_clip(g):
    """gamma_T is 2.4e-9 in float64 and can round below GAMMA_MIN in float32."""
    return array_namespace(g).clip(g, schedules.GAMMA_MIN, 1.0)

