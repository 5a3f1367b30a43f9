"""Torch training: the Trainer (process loss, backward, optimizer update, EMA), a timed train
step on fixed draws, and `restored` (a timed step leaves the model as it found it)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from bench.backends.framework_free import TRAIN_STEP_NOTE, Built, Step, latent_shape, train_arrays
from bench.backends.torch_adapter.arrays import device_arrays
from bench.backends.torch_adapter.building import denoiser
from bench.backends.torch_adapter.optimizer import clip_global_norm, ema_update, make_optimizer
from bench.backends.torch_adapter.precision import Policy
from bench.backends.torch_adapter.timing import first_call_seconds, maybe_compile
from bench.backends.torch_adapter.weights import export_weights, state_from


class Trainer:
    """Process loss (with the self-conditioning pass) + backward + optimizer update.

    `step(arrays)` takes device arrays from `device_arrays`: x0, t, eps, keep, and y / context
    when the model uses them; it returns the loss tensor (not synchronized). Without `opt` it is
    AdamW at framework_free.ADAMW (timing); with an OptimSpec, its optimizer, lr schedule,
    clipping and EMA.
    """

    def __init__(self, built: Built, *, compile: bool | None = False, opt=None, **adamw):
        self.built, self.opt, self.steps = built, opt, 0
        self.model = maybe_compile(built, compile)
        self.compiles_on_first_step = self.model is not built.model  # torch.compile compiles lazily
        self.optimizer = make_optimizer(built, opt, **adamw)
        self.latent_shape = latent_shape(built.config)
        self._zeros: dict[int, torch.Tensor] = {}
        self.params = dict(built.model.named_parameters())
        self.ema = None
        if opt is not None and opt.ema is not None:
            self.ema = {n: p.detach().clone() for n, p in self.params.items()}

    def loss(self, a: dict[str, torch.Tensor]) -> torch.Tensor:
        built = self.built
        latents = None
        if self.latent_shape is not None:  # zero latents, made once per batch size (not per step)
            batch = a["x0"].shape[0]
            if batch not in self._zeros:
                self._zeros[batch] = torch.zeros((batch, *self.latent_shape), device=built.device)
            latents = self._zeros[batch]
        denoise = denoiser(built, self.model, a.get("context"), a.get("context_mask"))
        draws = {k: v for k, v in a.items() if k not in ("x0", "y", "context", "context_mask")}
        return built.process.training_loss(denoise, a["x0"], y=a.get("y"), latents=latents,
                                           stop_gradient=torch.Tensor.detach, **draws)

    def step(self, a: dict[str, torch.Tensor]) -> torch.Tensor:
        """One update; the policy's backend flags (TF32, cudnn.benchmark) hold for all of it:
        forward, backward and optimizer."""
        if not self.built.model.training:  # a flag check; .train() walks every submodule
            self.built.model.train()
        with (self.built.policy or Policy()).step():
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(a)
            self.apply(loss)
        return loss.detach()

    def apply(self, loss: torch.Tensor) -> None:
        """Backward of `loss` and the update: this step's lr, clipping (after fp16 unscaling),
        the optimizer step through the precision policy, then the EMA."""
        clip = None
        if self.opt is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.opt.learning_rate(self.steps)
            if self.opt.clip is not None:
                clip = lambda: clip_global_norm(self.params.values(), self.opt.clip)
        (self.built.policy or Policy()).backward_and_step(loss, self.optimizer, clip)
        self.steps += 1
        if self.ema is not None:
            ema_update(self.ema, self.params, self.opt.ema)

    def weights(self, ema: bool = False) -> dict[str, np.ndarray]:
        """The current (or EMA) weights in the canonical checkpoint form."""
        if ema and self.ema is None:
            raise ValueError("this run keeps no EMA (opt.ema is None)")
        return export_weights(self.built, self.ema if ema else None)

    def load_ema(self, canonical: dict[str, np.ndarray]) -> None:
        """Start the EMA from checkpointed EMA weights (resuming a run)."""
        state = state_from(self.built, canonical)
        self.ema = {n: state[n].to(p.device).clone() for n, p in self.params.items()}


@contextlib.contextmanager
def restored(built: Built):
    """Whatever runs inside (a timed training step) leaves `built` as it found it: its weights and
    buffers (from a host copy taken first: no extra device memory), train/eval mode, the fp16 loss
    scaler and torch's RNG state."""
    model, policy = built.model, built.policy
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    mode, rng = model.training, torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if built.device.type == "cuda" else None
    scaler = None if policy is None or policy.scaler is None else policy.scaler.state_dict()
    try:
        yield built
    finally:
        model.load_state_dict(state)
        model.train(mode)
        torch.random.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if policy is not None:
            if scaler is None:
                policy.scaler = None
            else:
                policy.scaler.load_state_dict(scaler)


def make_train_step(built: Built, batch: int, *, seed: int = 0, compile: bool | None = False, **adamw) -> Step:
    """One training step on fixed draws (for timing): loss, backward, AdamW update. With latent
    self-conditioning it costs 2 forward passes + 1 backward (the pass-1 latents are detached)."""
    a = device_arrays(built, train_arrays(built, batch, seed))
    trainer = Trainer(built, compile=compile, **adamw)
    passes = built.process.forward_passes_per_train_step("latents" in built.entry.extras)
    step = Step(lambda: trainer.step(a), a, passes, bool(compile))
    step.notes.append(TRAIN_STEP_NOTE)
    return first_call_seconds(step) if compile else step
