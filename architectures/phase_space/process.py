"""The phase-space process (AGM, Chen et al. 2023): training loss and samplers, written once.

Arrays are numpy, torch or jax.numpy (array_api_compat); all randomness (t, eps, sampler noise)
comes in from the caller. The phase state m = [x, v] is concatenated on the channel axis, which
the backend adapter names (`channel_axis`: torch 1, flax -1). The network is the family's
denoise(m, time, y, latents) -> (out, _); the force is (1 - t) * out with time = 1 - t.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from array_api_compat import array_namespace, device as _device

from architectures.phase_space import bridge
from architectures.phase_space.process_config import PhaseSpaceProcessConfig
from architectures.processes.gaussian import SampleOut, _identity, _per_example

_QUADRATURE = np.polynomial.legendre.leggauss(64)  # nodes, weights on [-1, 1] for the gDDIM integrals


class PhaseSpaceProcess:
    """The harness's process interface (architectures/processes/__init__.py) for AGM."""

    def __init__(self, config: PhaseSpaceProcessConfig, channel_axis: int = -1):
        self.config = config
        self.channel_axis = channel_axis
        self._dyn = (config.p, config.k, config.varx, config.varv)

    # -- what the harness asks every process -------------------------------------------
    def forward_passes_per_train_step(self, has_latents: bool = True) -> int:
        return 1

    def nfe_per_sample_step(self, conditional: bool = True) -> int:
        return 1  # one force evaluation per step, with or without labels (no guidance)

    def nfe_per_sample(self, conditional: bool = True, steps: int | None = None) -> int:
        return steps or self.config.sample_steps

    def data_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Data (and the force) from the network's input shape (canonical channels-last): [x, v]
        has twice the data's channels."""
        return (*x_shape[:-1], x_shape[-1] // 2)

    def train_draws(self, rng, x_shape: tuple[int, ...]) -> dict:
        """t ~ U[t_min, t_max] and eps ~ N(0, I) shaped like m (x_shape: the data's shape)."""
        c = self.config
        return {"t": rng.uniform(c.t_min, c.t_max, (x_shape[0],)).astype("float32"),
                "eps": rng.standard_normal((*x_shape[:-1], 2 * x_shape[-1])).astype("float32")}

    # -- the bridge --------------------------------------------------------------------
    def split(self, m):
        c = m.shape[self.channel_axis] // 2
        ax = self.channel_axis % m.ndim
        idx = [slice(None)] * m.ndim
        idx[ax] = slice(0, c)
        first = m[tuple(idx)]
        idx[ax] = slice(c, 2 * c)
        return first, m[tuple(idx)]

    def join(self, x, v):
        return array_namespace(x).concat([x, v], axis=self.channel_axis)

    def marginal(self, x1, t, eps):
        """m_t = mean + L eps given the data x1 (official get_xt_vt_fv; eps like m), and the unnormalized
        probability-flow force label 4 (1-t)^2 x1 - g2P11 ((L_xx/(1-t) + L_xv) e_x + L_vv e_v) - g^2 ell e_v / 2."""
        e_x, e_v = self.split(eps)
        b = lambda a: _per_example(a, x1)
        l_xx, l_xv, l_vv, ell = (b(a) for a in bridge.cholesky(t, *self._dyn))
        cx, cv = (b(a) for a in bridge.mean_coefficients(t))
        tau, a = b(1.0 - t), b(bridge.g2p11(t))
        x_t = cx * x1 + l_xx * e_x
        v_t = cv * x1 + l_xv * e_x + l_vv * e_v
        score = -0.5 * b(bridge.g(t, self.config.p)) ** 2 * ell * e_v
        force = 4.0 * tau**2 * x1 - a * ((l_xx / tau + l_xv) * e_x + l_vv * e_v) + score
        return self.join(x_t, v_t), force

    def prior(self, noise):
        """m_0 from N(0, I) noise shaped like m (official Dynamics.get_m0)."""
        t0 = array_namespace(noise).zeros((noise.shape[0],), dtype=noise.dtype, device=_device(noise))
        e_x, e_v = self.split(noise)
        l_xx, l_xv, l_vv, _ = (_per_example(a, e_x) for a in bridge.cholesky(t0, *self._dyn))
        return self.join(l_xx * e_x, l_xv * e_x + l_vv * e_v)

    def force(self, denoise, m, t, y=None):
        """The normalized force (1 - t) net(m, 1 - t) (official network_wrapper with precond)."""
        out, _ = denoise(m, 1.0 - t, y, None)
        return _per_example(1.0 - t, out) * out

    def hop(self, m, t, force):
        """Sampling-hop: x_1 from (x_t, v_t) and the unnormalized force F, in closed form."""
        x, v = self.split(m)
        aa, bb, den = (_per_example(a, x) for a in bridge.hop_coefficients(t, *self._dyn))
        a = _per_example(bridge.g2p11(t), x)
        return (force + a * (aa * x + bb * v)) / den

    # -- training ----------------------------------------------------------------------
    def training_loss(self, denoise, x0, t, eps, y=None, *, latents=None, stop_gradient: Callable = _identity):
        """MSE(lambda pred, lambda label), lambda = sqrt(1/(1-t)) (official 'reciprocal' reweight);
        x0 is the data (x_1 in the paper's time)."""
        xp = array_namespace(x0)
        m, label = self.marginal(x0, t, eps)
        label = label / _per_example(bridge.normalizer(t, *self._dyn), label)
        lam = _per_example(xp.sqrt(1.0 / (1.0 - t)), label)
        return xp.mean((lam * self.force(denoise, m, t, y) - lam * label) ** 2)

    # -- sampling ----------------------------------------------------------------------
    def grid(self, steps: int | None = None) -> np.ndarray:
        """rev-quad: t_i = linspace(t_min^(1/2), T^(1/2), N)^2, then t_max (the last step's end)."""
        c, n = self.config, steps or self.config.sample_steps
        ts = np.linspace(c.t_min**0.5, c.hop_time**0.5, n, dtype=np.float64) ** 2
        ts[-1] = c.hop_time  # exactly: (T^(1/2))^2 can round above t_max = T, a negative last step
        return np.append(ts, c.t_max)

    def time_grid(self, steps: int | None = None) -> list[tuple[float, float]]:
        ts = self.grid(steps)
        return [(float(ts[i]), float(ts[i + 1])) for i in range(len(ts) - 1)]

    def gddim_coefficients(self, steps: int | None = None) -> np.ndarray:
        """(N, r+1, 2) float64: for step i and history j, the integrals over [t_i, t_{i+1}] of
        (t_{i+1} - s) n(s) l_j(s) and n(s) l_j(s), l_j the Lagrange basis on t_i, ..., t_{i-q},
        q = min(i, r); n the normalizer. Exponential integrator of the free particle,
        Phi(t, s) = [[1, t - s], [0, 1]] (official samplers.AB_fn, integrated by Gauss-Legendre)."""
        ts, r = self.grid(steps), self.config.gddim_order
        nodes, weights = _QUADRATURE
        out = np.zeros((len(ts) - 1, r + 1, 2))
        for i in range(len(ts) - 1):
            a, b = ts[i], ts[i + 1]
            s = 0.5 * (b - a) * nodes + 0.5 * (a + b)
            w = 0.5 * (b - a) * weights * bridge.normalizer(s, *self._dyn)
            q = min(i, r)
            for j in range(q + 1):
                basis = np.prod([(s - ts[i - kk]) / (ts[i - j] - ts[i - kk]) for kk in range(q + 1) if kk != j], axis=0)
                out[i, j] = (np.sum(w * basis * (b - s)), np.sum(w * basis))
        return out

    def sample_step_draws(self, rng, x_shape: tuple[int, ...], steps: int, only: int | None = None) -> list[dict]:
        """Per step: gDDIM's coefficients (r+1, 2), and for EM the noise like v. x_shape is m's
        (the network input); `only` = k gives step k's alone."""
        c = self.config
        keep = range(steps) if only is None else [only]
        if c.sampler == "gddim":
            coef = self.gddim_coefficients(steps).astype(np.float32)
            return [{"coef": coef[k]} for k in keep]
        return [{"noise": rng.standard_normal(self.data_shape(x_shape)).astype(np.float32)} for _ in keep]

    def initial_carry(self, x):
        """gDDIM's force history (r arrays like the data, newest first); EM carries nothing."""
        if self.config.sampler != "gddim" or self.config.gddim_order == 0:
            return None
        f, _ = self.split(x)
        return tuple(f * 0.0 for _ in range(self.config.gddim_order))

    def sample_step(self, denoise, x, t_now, t_next, y=None, latents=None, *, y_null=None, carry=None,
                    coef=None, noise=None) -> SampleOut:
        """One step of m from t_now to t_next ((B,) arrays). SampleOut.x0: the sample if this step were
        the last (output "hop": the x_1 estimate at t_now; "state": x at t_next)."""
        xp = array_namespace(x)
        f = self.force(denoise, x, t_now, y)
        big_f = _per_example(bridge.normalizer(t_now, *self._dyn), f) * f
        pos, vel = self.split(x)
        dt = _per_example(t_next - t_now, pos)
        if self.config.sampler == "gddim":
            history = (f, *(carry or ()))
            dx, dv = pos * 0.0, pos * 0.0
            for j, f_j in enumerate(history):
                dx, dv = dx + coef[j, 0] * f_j, dv + coef[j, 1] * f_j
            new = self.join(pos + dt * vel + dx, vel + dv)
            carry = None if carry is None else history[:-1]
        else:
            x1 = self.hop(x, t_now, big_f)
            tau = _per_example(1.0 - t_now, pos)
            a_sde = _per_example(bridge.g2p11(t_now), pos) * ((x1 - pos) / tau - vel)  # E[a* | m]
            g = _per_example(bridge.g(t_now, self.config.p), pos)
            new = self.join(pos + dt * vel, vel + dt * a_sde + g * xp.sqrt(dt) * noise)
        x0 = self.hop(x, t_now, big_f) if self.config.output == "hop" else self.split(new)[0]
        return SampleOut(x=new, x0=x0, latents=None, carry=carry)

    def sample(self, denoise, x_init, y=None, latents=None, *, y_null=None, steps: int | None = None,
               step_draws: list[dict] | None = None):
        """The whole run from N(0, I) noise shaped like m: prior, N steps, the last x0."""
        xp = array_namespace(x_init)
        n = steps or self.config.sample_steps
        if step_draws is None:  # gDDIM needs no randomness; EM's noise then comes from a fixed seed
            shape = tuple(self.split(x_init)[0].shape)
            step_draws = [{"coef": c} for c in self.gddim_coefficients(n).astype(np.float32)] \
                if self.config.sampler == "gddim" else \
                [{"noise": np.random.default_rng(k).standard_normal(shape).astype(np.float32)} for k in range(n)]
        draws = step_draws
        m = self.prior(x_init)
        carry, x0 = self.initial_carry(m), None
        batch = x_init.shape[0]
        for k, (t_now, t_next) in enumerate(self.time_grid(n)):
            tn = xp.full((batch,), t_now, dtype=x_init.dtype, device=_device(x_init))
            tp = xp.full((batch,), t_next, dtype=x_init.dtype, device=_device(x_init))
            d = {name: xp.asarray(a, device=_device(x_init)) if isinstance(a, np.ndarray) else a
                 for name, a in draws[k].items()}
            out = self.sample_step(denoise, m, tn, tp, y, None, carry=carry, **d)
            m, x0, carry = out.x, out.x0, out.carry
        return x0
