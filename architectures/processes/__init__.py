"""Diffusion processes, written once for numpy, torch and jax.numpy (array_api_compat).

A family's process class is registered in `architectures.registry.PROCESSES` (name ->
"module:Class") and built by the adapters as `Class(config.process, channel_axis=...)` (the
channel axis of the backend's layout: torch 1, flax -1; a process that concatenates on channels,
like the phase space's [x, v], needs it). The harness (adapters,
timing, FLOP records) talks to every process through these methods only, so a new family
needs no special case in bench/:

    forward_passes_per_train_step(has_latents) -> int   network forward passes in one train step
    nfe_per_sample_step(conditional) -> int             network evaluations in one sampler step
    nfe_per_sample(conditional, steps=None) -> int      ... in a full sampling run
    data_shape(x_shape) -> tuple                        the data's (and prediction's) shape from the
                                                        network input x's (config.input_shapes;
                                                        canonical channels-last); gaussian: the same
    train_draws(rng, x_shape) -> dict[str, ndarray]     numpy draws of one train step, keyed by
                                                        training_loss's keyword names (x_shape: data)
    training_loss(denoise, x0, y=None, *, latents=None, stop_gradient, **train_draws) -> scalar
    time_grid(steps=None) -> [(t_now, t_next), ...]     the sampler's steps
    sample_step_draws(rng, x_shape, steps, only=None) -> [dict]  host inputs of each sampler step
                                                        (noise, coefficients), keyed by sample_step's
                                                        keyword names; only=k: step k's alone
    prior(noise) -> x                                   the sampler's first state from N(0, I) noise
                                                        shaped like the network input
    initial_carry(x) -> carry                           sampler state beyond x (None, or a tuple of
                                                        arrays, e.g. gDDIM's force history)
    sample_step(denoise, x, t_now, t_next, y, latents, *, y_null=None, carry=None, **step_draws)
        -> SampleOut(x, x0, latents, carry)             x0: the sample if this were the last step
    sample(denoise, x_init, y, latents, *, y_null=None, steps=None, step_draws=None) -> x0

`denoise(x_t, time, y, latents) -> (prediction, latents_out)` wraps the network (see gaussian.py);
a network that learns its variance returns the prediction as a pair (prediction, v). Each
SampleOut carries `nfe`, the network evaluations its step made (a call on 2B rows is 2). The
gaussian process runs in continuous time or, with `timesteps` = T > 0, in the discrete time of
DDPM/ADM (discrete.py, float64 tables; coefficients.py); vlb.py holds iDDPM's variational-bound
term and learned variance; guidance.py classifier-free guidance (batched or two calls).
Randomness is always drawn by the caller (numpy, host side), so both backends see the same draws.
"""
