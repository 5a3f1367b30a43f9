"""Building a Flax model (variables initialized from the seed, on its device, under its precision
policy) and the denoiser the process calls over it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bench.backends.framework_free import Built, call_kwargs, make_process, network_output, random_inputs
from bench.backends.jax_adapter.device import INIT_PRNG_IMPL, NAME, resolve_device
from bench.backends.jax_adapter.precision import Policy
from bench.backends.jax_adapter.timing import FAST_COMPILE


def build(entry, config, *, seed: int = 0, device: str | jax.Device = "cpu", abstract: bool = False,
          precision: str = "fp32", attention: str = "auto", memory_format: str = "contiguous",
          donate: bool = True) -> Built:
    """Instantiate the entry's Flax model and initialize its variables from `seed`.

    abstract: jax.eval_shape(init), ShapeDtypeStructs only (no memory, no compute).
    precision, donate (the training step's buffers): the policy of precision.Policy (docs/precision.md)."""
    model = entry.load_model_class(NAME)(config)
    dev = resolve_device(device) if isinstance(device, str) else device
    policy = Policy.make(precision, attention, memory_format, dev, donate)
    dummy = random_inputs(config.input_shapes(1), seed, config.num_classes)
    key = jax.random.key(seed, impl=INIT_PRNG_IMPL)
    init = lambda k: model.init(k, **jax.tree.map(jnp.asarray, dummy))
    if abstract:
        variables = jax.eval_shape(init, key)
    else:
        with jax.default_device(dev):  # init runs once: compile it fast, not for speed
            variables = jax.jit(init).lower(key).compile(compiler_options=FAST_COMPILE)(key)
        variables = policy.prepare(variables)
    return Built(NAME, entry, config, model, variables, dev, make_process(entry, config, channel_axis=-1), seed,
                 abstract, policy)


def param_count(built: Built) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(built.params["params"]))


def denoiser(built: Built, variables, context=None, train: bool = False, key=None, context_mask=None):
    """denoise(x_t, time, y, latents) -> (pred, latents_out) over the Flax model; each call in
    training draws its own dropout key from `key`; the network runs under the case's precision
    policy. x and pred may be lists (one per resolution); only models with latents return a pair."""
    extras, calls, policy = built.entry.extras, [0], built.policy or Policy()

    def denoise(x, time, y, latents):
        v, a = policy.network(variables, {"x": x, "time": time, "context": context, "latents": latents})
        kwargs = {"train": train, **call_kwargs(extras, y, a["context"], a["latents"], context_mask)}
        rngs = {"dropout": jax.random.fold_in(key, calls[0])} if key is not None else None
        calls[0] += 1
        with policy.autocast():
            out = built.model.apply(v, a["x"], a["time"], rngs=rngs, **kwargs)
        return network_output(out, x, extras, policy.output, channel_axis=-1)

    return denoise
