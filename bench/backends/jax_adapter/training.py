"""The JAX/Flax adapter: the one place jax devices, threads, RNG, jit and memory are touched.

Same function names as torch_backend.py. Arrays stay in the canonical channels-last layout.
The network runs under the case's precision policy (bench/backends/jax_precision.py); the process
math in float32. Steps are compiled ahead of time (jit(f).lower(...).compile()) and
the compile time is reported apart from the step; compile=False runs op by op (no jit).
XLA reads its thread settings once, when the backend starts: a worker calls
`bench.backends.host.pin_threads(n)` BEFORE importing this module (see `set_threads`).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.backends import host
from bench.backends.host import Built, DeviceError, Step
from bench.backends.jax_precision import Policy
from bench.convert import canonical_to_flax, flax_to_canonical

NAME = "jax"
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}
# PRNG per use, measured by benchmarks/prng_cost.py (docs/backend-speed.md): threefry for both.
# Weight init: unsafe_rbg's first init call took 4.1-4.4x threefry's on rin-cifar10 (0.83-1.02x on
# rin-tiny). Dropout / stochastic-depth keys in the training step: threefry masks cost ~28 ns per
# element against unsafe_rbg's ~37-41. Seeds stay deterministic per platform. Process randomness
# (t, eps, noise) comes from host.py (numpy).
INIT_PRNG_IMPL = "threefry2x32"
PRNG_IMPL = "threefry2x32"  # dropout / stochastic-depth keys
JIT_NOTE = ("jax: jit-compiled ahead of time, compile_s apart from the step (a suite's compile: none is refused "
            "for jax; the compile setting is torch.compile's)")
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # for one-off programs (init), never timed ones


# -- devices, threads, memory -------------------------------------------------------------
def resolve_device(spec: str = "cpu") -> jax.Device:
    kind, index = host.parse_device(spec)
    if kind == "auto":
        return jax.devices()[0]  # jax's default backend: tpu > gpu > cpu
    try:
        devices = jax.devices(_PLATFORMS[kind])
    except RuntimeError as err:
        raise DeviceError(f"device {spec!r} unavailable: jax {jax.__version__} found {jax.devices()} ({err})") from err
    index = index or 0
    if index >= len(devices):
        raise DeviceError(f"device {spec!r} unavailable: jax found {len(devices)} {kind} device(s): {devices}")
    return devices[index]


def set_threads(threads: int) -> dict[str, Any]:
    """Report the XLA thread setting to record; it cannot be changed once jax has started.

    The case process calls bench.backends.host.pin_threads(threads) before `import jax` (the
    worker does; the runner also passes bench.backends.threads.thread_env). If that did not
    happen, `xla_threads_applied` is False in the record and a warning says so.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    cpus = len(os.sched_getaffinity(0))
    applied = host.thread_env(threads)["XLA_FLAGS"] in flags and cpus <= threads
    if not applied:
        warnings.warn(f"jax threads={threads} not applied (XLA_FLAGS={flags!r}, {cpus} CPUs in affinity): call "
                      "bench.backends.host.pin_threads(n) before importing jax", RuntimeWarning, stacklevel=2)
    return {"xla_threads": threads if applied else None, "xla_threads_applied": applied, "XLA_FLAGS": flags,
            "cpu_affinity": cpus}


def device_description(device: jax.Device | str = "cpu") -> dict[str, Any]:
    device = resolve_device(device) if isinstance(device, str) else device
    memory = {k: os.environ.get(k) for k in ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                                             "XLA_PYTHON_CLIENT_ALLOCATOR")}
    return {"backend": NAME, "device": str(device), "platform": device.platform, "name": device.device_kind,
            "jax": jax.__version__, "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "cpu_affinity": len(os.sched_getaffinity(0)), "memory_env": memory,
            "prng_impl": {"init": INIT_PRNG_IMPL, "dropout": PRNG_IMPL}, **configure_cache()}


_PEAK_BEFORE: dict = {}  # device -> its lifetime peak when reset_peak_memory was called


def _memory_stats(device) -> dict | None:
    device = resolve_device(device) if isinstance(device, str) else device
    return device.memory_stats() if hasattr(device, "memory_stats") else None


def reset_peak_memory(device) -> None:
    """XLA cannot reset its peak counter (it is the process's lifetime peak): remember its value, so
    `peak_memory_span` can tell whether the steps since then reached the peak."""
    stats = _memory_stats(device)
    _PEAK_BEFORE[str(device)] = None if not stats else stats.get("peak_bytes_in_use")


def peak_memory(device) -> int | None:
    """device.memory_stats()['peak_bytes_in_use'] (the process's lifetime peak) where the platform
    provides it (GPU/TPU), else None."""
    stats = _memory_stats(device)
    return None if not stats or "peak_bytes_in_use" not in stats else int(stats["peak_bytes_in_use"])


def peak_memory_span(device) -> dict:
    """{"bytes", "covers"}: the peak since reset_peak_memory when the lifetime peak rose in that span
    (then it is that span's peak, as torch's); otherwise the lifetime peak, labelled an upper bound."""
    peak = peak_memory(device)
    if peak is None:
        return {"bytes": None, "covers": None}
    before = _PEAK_BEFORE.get(str(device))
    if before is not None and peak > before:
        return {"bytes": peak, "covers": "the timed steps (the process's peak rose during them)"}
    return {"bytes": peak, "covers": "upper bound: the process's peak, reached before the timed steps (init, compile "
                                     "or autotuning); XLA cannot reset it"}


def program_peak_bytes(compiled) -> int | None:
    """XLA's own estimate of a compiled program's device memory (arguments, outputs, temporaries)."""
    try:
        return int(compiled.memory_analysis().peak_memory_in_bytes)
    except Exception:  # not compiled (eager), or a backend without memory analysis
        return None


def sync(x: Any = None) -> Any:
    """jax dispatch is asynchronous on every platform, CPU included."""
    return jax.block_until_ready(x)


def device_timer(device) -> None:
    """jax has no event API outside its profiler: host wall clock after block_until_ready."""
    return None


CACHE_ENV = "DIFFBENCH_JAX_CACHE_DIR"  # the persistent compilation cache, when set


def configure_cache() -> dict:
    """Turn on jax's persistent compilation cache when DIFFBENCH_JAX_CACHE_DIR is set; returns
    what to record. Whether a given compile hit it is recorded per step (`cache_state`)."""
    path = os.environ.get(CACHE_ENV)
    if not path:
        return {"persistent_cache": None}
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return {"persistent_cache": path}


def _cache_entries() -> int | None:
    path = os.environ.get(CACHE_ENV)
    if not path or not os.path.isdir(path):
        return None
    return sum(len(files) for _, _, files in os.walk(path))


def all_finite(x: Any) -> bool:
    return all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(x))


def to_numpy(x) -> np.ndarray:
    return host.tree_map(np.asarray, x)


# -- building ---------------------------------------------------------------------------------
def build(entry, config, *, seed: int = 0, device: str | jax.Device = "cpu", abstract: bool = False,
          precision: str = "fp32", attention: str = "auto", memory_format: str = "contiguous",
          donate: bool = True) -> Built:
    """Instantiate the entry's Flax model and initialize its variables from `seed`.

    abstract: jax.eval_shape(init), ShapeDtypeStructs only (no memory, no compute).
    precision, donate (the training step's buffers): the policy of jax_precision.Policy (docs/precision.md)."""
    model = entry.load_model_class(NAME)(config)
    dev = resolve_device(device) if isinstance(device, str) else device
    policy = Policy.make(precision, attention, memory_format, dev, donate)
    dummy = host.random_inputs(config.input_shapes(1), seed, config.num_classes)
    key = jax.random.key(seed, impl=INIT_PRNG_IMPL)
    init = lambda k: model.init(k, **jax.tree.map(jnp.asarray, dummy))
    if abstract:
        variables = jax.eval_shape(init, key)
    else:
        with jax.default_device(dev):  # init runs once: compile it fast, not for speed
            variables = jax.jit(init).lower(key).compile(compiler_options=FAST_COMPILE)(key)
        variables = policy.prepare(variables)
    return Built(NAME, entry, config, model, variables, dev, host.make_process(entry, config, channel_axis=-1), seed,
                 abstract, policy)


def param_count(built: Built) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(built.params["params"]))


def device_arrays(built: Built, arrays: dict[str, np.ndarray | None]) -> dict[str, jax.Array | None]:
    return {n: None if a is None else jax.device_put(a, built.device) for n, a in arrays.items()}


def make_inputs(built: Built, batch: int, seed: int = 0) -> dict[str, jax.Array]:
    shapes = built.config.input_shapes(batch)
    return device_arrays(built, host.random_inputs(shapes, seed, built.config.num_classes))


def denoiser(built: Built, variables, context=None, train: bool = False, key=None, context_mask=None):
    """denoise(x_t, time, y, latents) -> (pred, latents_out) over the Flax model; each call in
    training draws its own dropout key from `key`; the network runs under the case's precision
    policy. x and pred may be lists (one per resolution); only models with latents return a pair."""
    extras, calls, policy = built.entry.extras, [0], built.policy or Policy()

    def denoise(x, time, y, latents):
        v, a = policy.network(variables, {"x": x, "time": time, "context": context, "latents": latents})
        kwargs = {"train": train, **host.call_kwargs(extras, y, a["context"], a["latents"], context_mask)}
        rngs = {"dropout": jax.random.fold_in(key, calls[0])} if key is not None else None
        calls[0] += 1
        with policy.autocast():
            out = built.model.apply(v, a["x"], a["time"], rngs=rngs, **kwargs)
        pred, latents_out = out if "latents" in extras else (out, None)
        if isinstance(pred, (list, tuple)):
            return [_split_variance(policy.output(p), xi) for p, xi in zip(pred, x)], policy.output(latents_out)
        return _split_variance(policy.output(pred), x), policy.output(latents_out)

    return denoise


def _split_variance(pred, x):
    """learn_sigma models output [prediction | v] on channels (iDDPM): the process gets the pair
    (prediction, v) and trains/samples the learned variance; any other output passes as is."""
    c = x.shape[-1]
    if pred.shape[-1] != 2 * c:
        return pred
    return pred[..., :c], pred[..., c:]


def _aot(fn, args: tuple, compile: bool | None, donate: tuple[int, ...] = (), policy=None,
         options: dict | None = None):
    """(callable, compile seconds): jit(fn).lower(*args).compile(), or fn itself un-jitted; traced
    under the policy's matmul precision."""
    policy = policy or Policy()
    if compile is False:
        def eager(*a):
            with policy.tracing():
                return fn(*a)
        return eager, None
    start, before = time.perf_counter(), _cache_entries()
    with policy.tracing():
        compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile(compiler_options=options)
    _LAST_CACHE_STATE[0] = _cache_state(before, _cache_entries())
    return compiled, time.perf_counter() - start


_LAST_CACHE_STATE = [None]


def _cache_state(before: int | None, after: int | None) -> str | None:
    """'warm' when the persistent cache served the program (nothing new written), 'cold' when this
    compile wrote it; None without a cache."""
    if after is None:
        return None
    return "cold" if after > (before or 0) else "warm"


# -- sampling ---------------------------------------------------------------------------------
def make_sample_step(built: Built, batch: int, *, seed: int = 0, compile: bool | None = True,
                     step_index: int | None = None) -> Step:
    """One sampler step: guided network call(s) + DDIM/DDPM update, carrying RIN's latents.
    With classifier-free guidance one step costs 2 NFEs (Step.nfe)."""
    cfg, process = built.config, built.process
    arrays = host.random_inputs(cfg.input_shapes(batch), seed, cfg.num_classes)
    k = cfg.process.sample_steps // 2 if step_index is None else step_index
    t_now, t_next = process.time_grid()[k]
    draws = process.sample_step_draws(np.random.default_rng(seed + 1), host.shape_tree(arrays["x"]),
                                      cfg.process.sample_steps, only=k)[0]
    arrays.update(draws, y_null=host.null_labels(arrays.get("y"), cfg.num_classes),
                  t_now=np.full((batch,), t_now, np.float32), t_next=np.full((batch,), t_next, np.float32))
    a = device_arrays(built, arrays)
    a["carry"] = process.initial_carry(a["x"])  # sampler state beyond x (gDDIM: force history), as zeros

    def step(variables, a):
        denoise = denoiser(built, variables, a.get("context"), context_mask=a.get("context_mask"))
        out = process.sample_step(denoise, a["x"], a["t_now"], a["t_next"], a.get("y"), a.get("latents"),
                                  y_null=a["y_null"], carry=a["carry"], **{k: a[k] for k in draws})
        return out.x, out.latents

    run, seconds = _aot(step, (built.params, a), compile, policy=built.policy)
    out = Step(lambda: run(built.params, a), a, process.nfe_per_sample_step(cfg.num_classes > 0),
               compile is not False, seconds)
    out.info["cache_state"] = _LAST_CACHE_STATE[0]
    if compile is not False:
        out.notes.append(JIT_NOTE)
    out.info["xla_program_peak_bytes"] = program_peak_bytes(run)
    return out


def generate(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
             context=None) -> np.ndarray:
    """sampling_run(...).x: (B, ...) numpy samples in [-1, 1]."""
    return sampling_run(built, batch, seed=seed, steps=steps, labels=labels, context=context).x


def sampling_run(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
                 context=None) -> host.SampleRun:
    """A full sampling run (the configured sampler, guidance and latent carry) and the network
    evaluations it made: one jitted step, called once per time in a Python loop; the step's
    evaluations are counted when it is traced (the compiled program runs exactly those)."""
    process, n = built.process, steps or built.config.process.sample_steps
    traced = {}
    d = host.sampling_draws(built.config, process, batch, seed, n, labels, context)
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
    return host.SampleRun(to_numpy(x0), nfe, n)


# -- training ---------------------------------------------------------------------------------
def make_optimizer(built: Built, opt=None, **overrides) -> optax.GradientTransformation:
    """opt None: optax.adamw with host.ADAMW (same as torch.optim.AdamW in the torch adapter).
    opt (bench.training.optim.OptimSpec): AdamW or LAMB with its lr schedule and clipping. Weight
    decay never applies to 1-D parameters (biases, norm scales)."""
    mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
    if opt is None:
        h = {**host.ADAMW, **overrides}
        return optax.adamw(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], weight_decay=h["weight_decay"], mask=mask)
    lr = lambda count: opt.learning_rate(count, jnp)
    if opt.optimizer == "adamw":
        tx = optax.adamw(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay, mask=mask)
    elif opt.adapt_1d:
        tx = optax.lamb(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay, mask=mask)
    else:  # optax.lamb's own chain with the trust ratio kept off 1-D tensors (TF-Addons' LAMB)
        tx = optax.chain(optax.scale_by_adam(b1=opt.b1, b2=opt.b2, eps=opt.eps),
                         optax.add_decayed_weights(opt.weight_decay, mask=mask),
                         optax.masked(optax.scale_by_trust_ratio(), mask),
                         optax.scale_by_learning_rate(lr))
    return tx if opt.clip is None else optax.chain(optax.clip_by_global_norm(opt.clip), tx)


def ema_update(ema, params, decay: float):
    """e = decay * e + (1 - decay) * p for every leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)


def export_weights(built: Built, params=None) -> dict[str, np.ndarray]:
    """The `params` collection (default: the built model's) in the canonical checkpoint form."""
    return flax_to_canonical(built.params["params"] if params is None else params)


def load_weights(built: Built, canonical: dict[str, np.ndarray]) -> None:
    built.params = {**built.params, "params": canonical_to_flax(canonical, built.params["params"])}


class Trainer:
    """Process loss (with the self-conditioning pass) + grad + optimizer update (+ EMA), jitted
    as one program with the parameters, optimizer state and EMA donated (unless the policy's
    `donate` is off); after each step the built model holds the new parameters (the donated ones
    are invalid), as a torch model is updated in place. `step(arrays)` takes device arrays (x0,
    t, eps, keep, y / context) and returns the loss (not synchronized). Without `opt` it is AdamW
    at host.ADAMW (timing); with an OptimSpec, its optimizer, lr schedule, clipping and EMA."""

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
        shapes = built.config.input_shapes(1)
        self.latent_shape = shapes["latents"][0][1:] if "latents" in shapes else None
        self.key, self._run, self.compile_seconds = jax.random.key(built.seed + 1, impl=PRNG_IMPL), None, None

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
        """options: XLA compiler options (FAST_COMPILE for a step that is run, not timed)."""
        args = (self.params, self.opt_state, self.ema, a, self.key)
        donate = (0, 1, 2) if self.policy.donate else ()
        self._run, self.compile_seconds = _aot(self.advance, args, self.compile, donate=donate,
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
        self.ema = canonical_to_flax(canonical, self.params)


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
    cfg = built.config
    shapes = cfg.input_shapes(batch)
    arrays = host.random_inputs(shapes, seed, cfg.num_classes)
    x0 = host.train_data(built.process, shapes, arrays)  # phase space: data x, network input [x, v]
    draws = built.process.train_draws(np.random.default_rng(seed + 1), host.shape_tree(x0))
    a = device_arrays(built, {"x0": x0, "y": arrays.get("y"), "context": arrays.get("context"),
                              "context_mask": arrays.get("context_mask"), **draws})
    a = {k: v for k, v in a.items() if v is not None}
    trainer = Trainer(built, compile=compile, **adamw)
    passes = built.process.forward_passes_per_train_step("latents" in built.entry.extras)
    if compile is not False:  # compile now so the first timed call does not include it
        trainer.compile_step(a)
    step = Step(lambda: trainer.step(a), a, passes, compile is not False,
                trainer.compile_seconds)
    step.info["cache_state"] = _LAST_CACHE_STATE[0] if compile is not False else None
    if compile is not False:
        step.notes.append(JIT_NOTE)
    step.info["xla_program_peak_bytes"] = program_peak_bytes(trainer._run)
    step.notes.append("nfe counts forward passes; the backward pass is extra")
    return step
