"""Diffusion processes, written once for numpy, torch and jax.numpy (array_api_compat).

A family's process class is registered in `architectures.registry.PROCESSES` (name ->
"module:Class") and built by the adapters as `Class(config.process)`. The harness (adapters,
timing, FLOP records) talks to every process through these methods only, so a new family
needs no special case in bench/:

    forward_passes_per_train_step(has_latents) -> int   network forward passes in one train step
    nfe_per_sample_step(conditional) -> int             network evaluations in one sampler step
    nfe_per_sample(conditional, steps=None) -> int      ... in a full sampling run
    train_draws(rng, x_shape) -> dict[str, ndarray]     numpy draws of one train step, keyed by
                                                        training_loss's keyword names
    training_loss(denoise, x0, y=None, *, latents=None, stop_gradient, **train_draws) -> scalar
    time_grid(steps=None) -> [(t_now, t_next), ...]     the sampler's steps
    sample_step_draws(rng, x_shape, steps) -> [dict]    numpy draws of each sampler step, keyed by
                                                        sample_step's keyword names
    sample_step(denoise, x, t_now, t_next, y, latents, *, y_null=None, **step_draws) -> SampleOut
    sample(denoise, x_init, y, latents, *, y_null=None, steps=None, step_draws=None) -> x0

`denoise(x_t, time, y, latents) -> (prediction, latents_out)` wraps the network (see gaussian.py).
Randomness is always drawn by the caller (numpy, host side), so both backends see the same draws.
"""
