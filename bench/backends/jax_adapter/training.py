"""Jax training: the Trainer (process loss, grad, optimizer update, EMA: one program, compiled
ahead of time, buffers donated), a timed train step on fixed draws, and `restored` (a timed step
leaves the model's variables as it found them)."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.backends.framework_free import TRAIN_STEP_NOTE, Built, Step, latent_shape, train_arrays
from bench.backends.jax_adapter.arrays import device_arrays
from bench.backends.jax_adapter.building import denoiser
from bench.backends.jax_adapter.device import PRNG_IMPL, program_peak_bytes
from bench.backends.jax_adapter.optimizer import ema_update, make_optimizer
from bench.backends.jax_adapter.precision import Policy
from bench.backends.jax_adapter.timing import JIT_NOTE, aot
from bench.backends.jax_adapter.weights import export_weights, params_from


class Trainer:
    """Process loss (with the self-conditioning pass) + grad + optimizer update (+ EMA), jitted
    as one program with the parameters, optimizer state and EMA donated (unless the policy's
    `donate` is off); after each step the built model holds the new parameters (the donated ones
    are invalid), as a torch model is updated in place. `step(arrays)` takes device arrays (x0,
    t, eps, keep, y / context) and returns the loss (not synchronized). Without `opt` it is AdamW
    at framework_free.ADAMW (timing); with an OptimSpec, its optimizer, lr schedule, clipping and
    EMA."""

    def __init__(self, built: Built, *, compile: bool | None = True, opt=None, **adamw):
        self.built, self.compile, self.opt = built, compile, opt
        self.optimizer = make_optimizer(built, opt, **adamw)
        self.params = built.params["params"]
        self.others = {k: v for k, v in built.params.items() if k != "params"}
        self.policy = built.policy or Policy()
        init = lambda p: {"opt": self.optimizer.init(p), "loss_scale": self.policy.initial_scale()}
        self.opt_state = jax.eval_shape(init, self.params) if built.abstract else init(self.params)  # abstract: shapes only
        keep_ema = opt is not None and opt.ema is not None
        self.ema = jax.tree.map(jnp.copy, self.params) if keep_ema and not built.abstract else None
        self.latent_shape = latent_shape(built.config)
        self.key, self._run = jax.random.key(built.seed + 1, impl=PRNG_IMPL), None
        self.compile_seconds = self.cache_state = None  # of this trainer's compile (compile_step)

    def loss(self, params, a, key):
        built = self.built
        latents = None if self.latent_shape is None else jnp.zeros((a["x0"].shape[0], *self.latent_shape))
        denoise = denoiser(built, {"params": params, **self.others}, a.get("context"), train=True, key=key,
                           context_mask=a.get("context_mask"))
        draws = {k: v for k, v in a.items() if k not in ("x0", "y", "context", "context_mask")}
        return built.process.training_loss(denoise, a["x0"], y=a.get("y"), latents=latents,
                                           stop_gradient=jax.lax.stop_gradient, **draws)

    def update(self, params, opt_state, a, key):
        scale_state = opt_state["loss_scale"]
        if scale_state is None:
            loss, grads = jax.value_and_grad(self.loss)(params, a, key)
            updates, inner = self.optimizer.update(grads, opt_state["opt"], params)
            return optax.apply_updates(params, updates), {"opt": inner, "loss_scale": None}, loss
        # fp16: scaled loss, unscaled grads; a step with inf/nan grads is skipped and the scale halved
        scaled, grads = jax.value_and_grad(lambda p: self.loss(p, a, key) * scale_state["scale"])(params)
        grads, finite, scale_state = self.policy.unscale(grads, scale_state)
        updates, inner = self.optimizer.update(grads, opt_state["opt"], params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        return (keep(new_params, params), {"opt": keep(inner, opt_state["opt"]), "loss_scale": scale_state},
                scaled / opt_state["loss_scale"]["scale"])

    def advance(self, params, opt_state, ema, a, key):
        """update() (+ the EMA) with this step's dropout key split off inside the program, so a
        timed step dispatches one compiled call and nothing else (no eager key op, no host transfer)."""
        key, sub = jax.random.split(key)
        params, opt_state, loss = self.update(params, opt_state, a, sub)
        if ema is not None:
            ema = ema_update(ema, params, self.opt.ema)
        return params, opt_state, ema, loss, key

    def compile_step(self, a, options: dict | None = None) -> None:
        """options: XLA compiler options (FAST_COMPILE for a step that is run, not timed). The
        compile's seconds and persistent-cache state stay on the trainer."""
        args = (self.params, self.opt_state, self.ema, a, self.key)
        donate = (0, 1, 2) if self.policy.donate else ()
        self._run, self.compile_seconds, self.cache_state = aot(self.advance, args, self.compile, donate=donate,
                                                                policy=self.policy, options=options)

    def step(self, a):
        if self._run is None:
            self.compile_step(a)
        self.params, self.opt_state, self.ema, loss, self.key = self._run(self.params, self.opt_state, self.ema, a,
                                                                          self.key)
        self.built.params = {**self.others, "params": self.params}  # the donated ones are gone, as in torch
        return loss

    def weights(self, ema: bool = False) -> dict[str, np.ndarray]:
        """The current (or EMA) weights in the canonical checkpoint form."""
        if ema and self.ema is None:
            raise ValueError("this run keeps no EMA (opt.ema is None)")
        return export_weights(self.built, self.ema if ema else self.params)

    def load_ema(self, canonical: dict[str, np.ndarray]) -> None:
        """Start the EMA from checkpointed EMA weights (resuming a run)."""
        self.ema = params_from(canonical, self.params)


@contextlib.contextmanager
def restored(built: Built):
    """Whatever runs inside (a timed training step, which donates the parameters) leaves `built`
    with the variables it had, put back from a host copy taken first (no extra device memory)."""
    saved = jax.tree.map(lambda a: np.array(a, copy=True), built.params)
    try:
        yield built
    finally:
        built.params = jax.device_put(saved, built.device)


def make_train_step(built: Built, batch: int, *, seed: int = 0, compile: bool | None = True, **adamw) -> Step:
    """One training step on fixed draws (for timing): loss, grad, AdamW update. With latent
    self-conditioning it costs 2 forward passes + 1 backward (pass-1 latents under stop_gradient)."""
    a = {k: v for k, v in device_arrays(built, train_arrays(built, batch, seed)).items() if v is not None}
    trainer = Trainer(built, compile=compile, **adamw)
    passes = built.process.forward_passes_per_train_step("latents" in built.entry.extras)
    if compile is not False:  # compile now so the first timed call does not include it
        trainer.compile_step(a)
    step = Step(lambda: trainer.step(a), a, passes, compile is not False,
                trainer.compile_seconds)
    step.info["cache_state"] = trainer.cache_state
    if compile is not False:
        step.notes.append(JIT_NOTE)
    step.info["xla_program_peak_bytes"] = program_peak_bytes(trainer._run)
    step.notes.append(TRAIN_STEP_NOTE)
    return step
