"""Jax sampling: one timed sampler step (compiled ahead of time) and a full sampling run (one
jitted step called per time)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bench.backends.framework_free import (Built, conditional, SampleRun, Step, generate_from, sample_step_arrays,
                                           sampling_draws)
from bench.backends.jax_adapter.arrays import device_arrays, to_numpy
from bench.backends.jax_adapter.building import denoiser
from bench.backends.jax_adapter.device import program_peak_bytes
from bench.backends.jax_adapter.precision import Policy
from bench.backends.jax_adapter.timing import JIT_NOTE, aot


def make_sample_step(built: Built, batch: int, *, seed: int = 0, compile: bool | None = True,
                     step_index: int | None = None) -> Step:
    """One sampler step: guided network call(s) + DDIM/DDPM update, carrying RIN's latents.
    With classifier-free guidance one step costs 2 NFEs (Step.nfe)."""
    cfg, process = built.config, built.process
    arrays, draws = sample_step_arrays(built, batch, seed, step_index)
    a = device_arrays(built, arrays)
    a["carry"] = process.initial_carry(a["x"])  # sampler state beyond x (gDDIM: force history), as zeros

    def step(variables, a):
        denoise = denoiser(built, variables, a.get("context"), context_mask=a.get("context_mask"))
        out = process.sample_step(denoise, a["x"], a["t_now"], a["t_next"], a.get("y"), a.get("latents"),
                                  y_null=a["y_null"], carry=a["carry"], **{k: a[k] for k in draws})
        return out.x, out.latents

    compiled = aot(step, (built.params, a), compile, policy=built.policy)
    out = Step(lambda: compiled.run(built.params, a), a, process.nfe_per_sample_step(conditional(cfg)),
               compile is not False, compiled.seconds)
    out.info["cache_state"] = compiled.cache_state
    if compile is not False:
        out.notes.append(JIT_NOTE)
    out.info["xla_program_peak_bytes"] = program_peak_bytes(compiled.run)
    return out


def sampling_run(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
                 context=None) -> SampleRun:
    """A full sampling run (the configured sampler, guidance and latent carry) and the network
    evaluations it made: one jitted step, called once per time in a Python loop; the step's
    evaluations are counted when it is traced (the compiled program runs exactly those)."""
    process, n = built.process, steps or built.config.process.sample_steps
    traced = {}
    d = sampling_draws(built.config, process, batch, seed, n, labels, context)
    a = device_arrays(built, {k: v for k, v in d.items() if k != "step_draws"})

    @jax.jit
    def step(variables, x, t_now, t_next, latents, carry, draws):
        denoise = denoiser(built, variables, a["context"], context_mask=a.get("context_mask"))
        out = process.sample_step(denoise, x, t_now, t_next, a["y"], latents, y_null=a["y_null"], carry=carry,
                                  **draws)
        traced["nfe"] = out.nfe
        return out.x, out.x0, out.latents, out.carry

    x = process.prior(a["x"])  # the process's first state from N(0, I) noise (gaussian: the noise itself)
    x0, latents, carry, nfe = x, a["latents"], process.initial_carry(x), 0
    with (built.policy or Policy()).tracing():
        for k, (t_now, t_next) in enumerate(process.time_grid(n)):
            x, x0, latents, carry = step(built.params, x, jnp.full((batch,), t_now), jnp.full((batch,), t_next),
                                         latents, carry, d["step_draws"][k])
            nfe += traced["nfe"]
    return SampleRun(to_numpy(x0), nfe, n)


generate = generate_from(sampling_run)
