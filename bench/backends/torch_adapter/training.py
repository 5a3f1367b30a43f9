"""The PyTorch adapter: the one place torch devices, threads, RNG, compile and memory are touched.

Same function names as jax_backend.py. Models take channels-first tensors; inputs are drawn in
the canonical channels-last layout (bench.backends.host) and transposed here, outside any timed
region. The network runs under the case's precision policy (bench/backends/torch_precision.py);
the process math in float32.
"""

from __future__ import annotations

import contextlib
import platform
import time
from typing import Any

import numpy as np
import torch

from bench.backends import host
from bench.backends.host import Built, DeviceError, Step
from bench.backends.torch_precision import Policy
from bench.convert import canonical_to_torch, torch_to_canonical
from bench.training.lamb_torch import LAMB

NAME = "torch"


# -- devices, threads, memory -------------------------------------------------------------
def resolve_device(spec: str = "cpu") -> torch.device:
    kind, index = host.parse_device(spec)
    if kind == "tpu":
        raise DeviceError("the torch backend does not run on TPU (torch_xla is not supported); use backend 'jax'")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} unavailable: torch {torch.__version__} sees no CUDA device "
                          f"(torch.version.cuda={torch.version.cuda})")
    index = index or 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} unavailable: torch sees {count} CUDA device(s)")
    return torch.device("cuda", index)


def set_threads(threads: int) -> dict[str, Any]:
    """Intra-op threads (torch.set_num_threads); returns what to record."""
    torch.set_num_threads(threads)
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}


def device_description(device: torch.device | str = "cpu") -> dict[str, Any]:
    device = torch.device(device)
    info = {"backend": NAME, "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    # the TF32 / cudnn.benchmark flags of a step are set by its policy: recorded under precision.backend_flags
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    else:
        info.update(name=platform.processor() or platform.machine())
    return info


def reset_peak_memory(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device | str) -> int | None:
    """Peak bytes allocated on a CUDA device since the last reset; None on CPU (use the process RSS)."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def peak_memory_span(device: torch.device | str) -> dict:
    """{"bytes", "covers"}: the peak since reset_peak_memory (None on CPU)."""
    peak = peak_memory(device)
    return {"bytes": peak, "covers": None if peak is None else "the timed steps (peak reset before them)"}


def sync(x: Any = None) -> Any:
    """Wait for the device work behind x (CUDA is asynchronous; CPU ops already are done); with
    no tensor in x (None), drain the current CUDA device, when this process has started CUDA."""
    device = sync_device(x)
    if device is not None:
        torch.cuda.synchronize(device)
    return x


def sync_device(x: Any = None) -> torch.device | None:
    """The CUDA device sync(x) drains: x's first tensor's, or the current device when x holds no
    tensor; None when there is nothing to wait for (CPU tensors, or CUDA never started)."""
    tensors = _tensors(x)
    if tensors:
        return tensors[0].device if tensors[0].is_cuda else None
    if torch.cuda.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return None


class CudaEvents:
    """Device time of one step from CUDA events recorded on the current stream around it."""

    def __init__(self):
        self.begin = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def start(self):
        self.begin.record()

    def stop(self):
        self.end.record()

    def seconds(self) -> float:
        self.end.synchronize()
        return self.begin.elapsed_time(self.end) / 1e3


def device_timer(device) -> CudaEvents | None:
    """CUDA events for CUDA devices; None elsewhere (host wall clock is the device time on CPU)."""
    return CudaEvents() if torch.device(device).type == "cuda" else None


def all_finite(x: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in _tensors(x))


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A tensor back in the canonical channels-last layout when it is image/video shaped (a list:
    each of its tensors)."""
    if isinstance(x, (list, tuple)):
        return [to_numpy(a) for a in x]
    a = x.detach().cpu().numpy()
    return np.moveaxis(a, 1, -1) if a.ndim >= 4 else a


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


# -- building ---------------------------------------------------------------------------------
def build(entry, config, *, seed: int = 0, device: str | torch.device = "cpu", abstract: bool = False,
          precision: str = "fp32", attention: str = "auto", memory_format: str = "contiguous",
          cudnn_benchmark: bool | None = None, fused_adamw: bool = False) -> Built:
    """Instantiate the entry's torch model. abstract: on the meta device (shapes only, no memory).
    precision / attention / memory_format / cudnn_benchmark (None: on for CUDA) / fused_adamw: the
    policy of torch_precision.Policy (docs/precision.md)."""
    cls = entry.load_model_class(NAME)
    torch.manual_seed(seed)  # weight init and dropout draw from torch's global generator
    if abstract:
        with torch.device("meta"):
            model = cls(config)
        dev = torch.device("meta")
        policy = Policy(precision, attention, memory_format, "meta")
    else:
        dev = resolve_device(device) if isinstance(device, str) else device
        policy = Policy.make(precision, attention, memory_format, dev, cudnn_benchmark, fused_adamw)
        model = policy.prepare(cls(config).to(dev))
    return Built(NAME, entry, config, model, None, dev, host.make_process(entry, config, channel_axis=1), seed,
                 abstract, policy)


def param_count(built: Built) -> int:
    return sum(p.numel() for p in built.model.parameters())


def device_arrays(built: Built, arrays: dict[str, np.ndarray | None]) -> dict[str, torch.Tensor | None]:
    """Canonical numpy arrays -> tensors on the device; data-shaped ones to channels-first."""
    def move(name, a):
        a = np.moveaxis(a, -1, 1) if name in host.X_LIKE and a.ndim >= 4 else a
        return torch.from_numpy(np.ascontiguousarray(a)).to(built.device)

    return {name: host.tree_map(lambda a: move(name, a), a) for name, a in arrays.items()}


def make_inputs(built: Built, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Model inputs of config.input_shapes(batch), drawn on the host and moved/transposed once."""
    shapes = built.config.input_shapes(batch)
    return device_arrays(built, host.random_inputs(shapes, seed, built.config.num_classes))


def denoiser(built: Built, model, context=None, context_mask=None):
    """The process's denoise(x_t, time, y, latents) -> (pred, latents_out) over a torch model,
    under the case's precision policy. x and pred may be lists (one per resolution); only models
    with latents return a pair; learn_sigma outputs become (prediction, v)."""
    extras, policy = built.entry.extras, built.policy or Policy()
    context = policy.inputs(context)

    def denoise(x, time, y, latents):
        xs = [policy.inputs(xi) for xi in x] if isinstance(x, (list, tuple)) else policy.inputs(x)
        with policy.call():  # mixed precision, TF32 flags, SDPA kernel: the network call only
            out = model(xs, time,  # time stays float32 (its embedding needs it)
                        **host.call_kwargs(extras, y, context, policy.inputs(latents), context_mask))
        pred, latents_out = out if "latents" in extras else (out, None)
        if isinstance(pred, (list, tuple)):
            return [_split_variance(policy.output(p), xi) for p, xi in zip(pred, x)], policy.output(latents_out)
        return _split_variance(policy.output(pred), x), policy.output(latents_out)

    return denoise


def _split_variance(pred: torch.Tensor, x: torch.Tensor):
    """learn_sigma models output [prediction | v] on channels (iDDPM): the process gets the pair
    (prediction, v) and trains/samples the learned variance; any other output passes as is."""
    c = x.shape[1]
    if pred.shape[1] != 2 * c:
        return pred
    return pred[:, :c], pred[:, c:]


def _maybe_compile(built: Built, compile: bool | str | None):
    """torch.compile with a mode ("default", "reduce-overhead", "max-autotune"; True = default)."""
    if not compile or compile == "none":
        return built.model
    return torch.compile(built.model, mode=None if compile in (True, "default") else compile)


def _first_call_seconds(step: Step) -> Step:
    """torch.compile compiles lazily: the first call's time (compile + one run) is reported, with
    the graphs and graph breaks dynamo counted."""
    from torch._dynamo.utils import counters

    counters.clear()
    start = time.perf_counter()
    sync(step.fn())
    step.compile_seconds = time.perf_counter() - start
    step.notes.append("torch.compile: compile_s is the first call (compile + one execution)")
    step.info.update(compile_graphs=int(counters["stats"].get("unique_graphs", 0)),
                     graph_breaks=int(sum(counters["graph_break"].values())),
                     graph_break_reasons=sorted(counters["graph_break"])[:10])
    return step


def _cuda_graphed(fn, device: torch.device):
    """fn replayed from a CUDA graph: warm up on a side stream, capture once, replay (static
    inputs and outputs, as torch.cuda.graphs requires)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = fn()

    def replay():
        graph.replay()
        return static_out

    return replay


# -- sampling ---------------------------------------------------------------------------------
def make_sample_step(built: Built, batch: int, *, seed: int = 0, compile: bool | str | None = False,
                     step_index: int | None = None, cuda_graphs: bool = False) -> Step:
    """One sampler step (inference mode): guided network call(s) + DDIM/DDPM update, carrying
    RIN's latents. With classifier-free guidance one step costs 2 NFEs (Step.nfe).
    cuda_graphs: replay the step from a CUDA graph (CUDA only)."""
    cfg, process = built.config, built.process
    a = make_inputs(built, batch, seed)
    k = cfg.process.sample_steps // 2 if step_index is None else step_index
    t_now, t_next = process.time_grid()[k]
    rng = np.random.default_rng(seed + 1)
    draws = process.sample_step_draws(rng, host.x_shape(cfg.input_shapes(batch)), cfg.process.sample_steps,
                                      only=k)[0]
    extra = {**draws, "y_null": host.null_labels(None if a.get("y") is None else a["y"].cpu().numpy(), cfg.num_classes)}
    a.update(device_arrays(built, extra))
    a["t_now"] = torch.full((batch,), t_now, device=built.device)
    a["t_next"] = torch.full((batch,), t_next, device=built.device)
    a["carry"] = process.initial_carry(a["x"])  # sampler state beyond x (gDDIM: force history), as zeros
    model = _maybe_compile(built, compile)
    denoise = denoiser(built, model, a.get("context"), a.get("context_mask"))
    policy = built.policy or Policy()

    def fn():
        if built.model.training:  # a train step on the same model may have switched dropout on
            built.model.eval()
        with policy.step(), torch.inference_mode():
            out = process.sample_step(denoise, a["x"], a["t_now"], a["t_next"], a.get("y"), a.get("latents"),
                                      y_null=a["y_null"], carry=a["carry"], **{k: a[k] for k in draws})
        return out.x, out.latents

    step = Step(fn, a, process.nfe_per_sample_step(cfg.num_classes > 0), bool(compile))
    if compile:
        step = _first_call_seconds(step)
    if cuda_graphs:
        if built.device.type != "cuda":
            raise DeviceError(f"cuda_graphs needs a CUDA device, not {built.device}")
        step.fn = _cuda_graphed(step.fn, built.device)
        step.info["cuda_graphs"] = True
    return step


def generate(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
             context=None) -> np.ndarray:
    """sampling_run(...).x: (B, ...) numpy samples, canonical channels-last, in [-1, 1]."""
    return sampling_run(built, batch, seed=seed, steps=steps, labels=labels, context=context).x


def sampling_run(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
                 context=None) -> host.SampleRun:
    """A full sampling run (the configured sampler, guidance and latent carry) and the network
    evaluations it made. `context` (canonical) for frame-conditioned video."""
    n = steps or built.config.process.sample_steps
    d = host.sampling_draws(built.config, built.process, batch, seed, n, labels, context)
    step_draws = [device_arrays(built, draws) for draws in d["step_draws"]]
    a = device_arrays(built, {k: v for k, v in d.items() if k != "step_draws"})
    net, calls = denoiser(built, built.model, a["context"], a.get("context_mask")), []

    def counted(*args):
        calls.append(host.rows(args[0]) // batch)  # a batched guided call evaluates 2 NFEs
        return net(*args)

    built.model.eval()
    with (built.policy or Policy()).step(), torch.inference_mode():
        x0 = built.process.sample(counted, a["x"], a["y"], a["latents"], y_null=a["y_null"], steps=n,
                                  step_draws=step_draws)
    return host.SampleRun(to_numpy(x0), sum(calls), n)


# -- training ---------------------------------------------------------------------------------
def make_optimizer(built: Built, opt=None, **overrides) -> torch.optim.Optimizer:
    """opt None: torch.optim.AdamW with host.ADAMW (same as optax.adamw in the jax adapter).
    opt (bench.training.optim.OptimSpec): AdamW or LAMB with its settings. Weight decay never
    applies to 1-D parameters (biases, norm scales)."""
    params = [p for p in built.model.parameters() if p.requires_grad]
    matrices, vectors = [p for p in params if p.ndim > 1], [p for p in params if p.ndim <= 1]
    fused = True if built.policy is not None and built.policy.fused_adamw else None  # None: torch's default
    if opt is None:
        h = {**host.ADAMW, **overrides}
        groups = [{"params": matrices, "weight_decay": h["weight_decay"]}, {"params": vectors, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"], fused=fused)
    if opt.optimizer == "adamw":
        groups = [{"params": matrices, "weight_decay": opt.weight_decay}, {"params": vectors, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=opt.lr, betas=(opt.b1, opt.b2), eps=opt.eps, fused=fused)
    groups = [{"params": matrices, "weight_decay": opt.weight_decay, "adapt": True},
              {"params": vectors, "weight_decay": 0.0, "adapt": opt.adapt_1d}]
    return LAMB(groups, lr=opt.lr, betas=(opt.b1, opt.b2), eps=opt.eps)


def clip_global_norm(params, max_norm: float) -> torch.Tensor:
    """optax.clip_by_global_norm: g *= max_norm / ||g|| when ||g|| >= max_norm; returns ||g||."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if norm >= max_norm:
        for g in grads:
            g.mul_(max_norm / norm)
    return norm


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], params: dict[str, torch.Tensor], decay: float) -> None:
    """e = decay * e + (1 - decay) * p, in place, for every named parameter."""
    for name, e in ema.items():
        e.mul_(decay).add_(params[name], alpha=1 - decay)


def export_weights(built: Built, ema: dict | None = None) -> dict[str, np.ndarray]:
    """The model's weights (EMA values where `ema` has them) in the canonical checkpoint form."""
    state = built.model.state_dict()
    return torch_to_canonical({**state, **(ema or {})})


def load_weights(built: Built, canonical: dict[str, np.ndarray]) -> None:
    built.model.load_state_dict(canonical_to_torch(canonical, built.model))


class Trainer:
    """Process loss (with the self-conditioning pass) + backward + optimizer update.

    `step(arrays)` takes device arrays from `device_arrays`: x0, t, eps, keep, and y / context
    when the model uses them; it returns the loss tensor (not synchronized). Without `opt` it is
    AdamW at host.ADAMW (timing); with an OptimSpec, its optimizer, lr schedule, clipping and EMA.
    """

    def __init__(self, built: Built, *, compile: bool | None = False, opt=None, **adamw):
        self.built, self.opt, self.steps = built, opt, 0
        self.model = _maybe_compile(built, compile)
        self.compiles_on_first_step = self.model is not built.model  # torch.compile compiles lazily
        self.optimizer = make_optimizer(built, opt, **adamw)
        shapes = built.config.input_shapes(1)
        self.latent_shape = shapes["latents"][0][1:] if "latents" in shapes else None
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
        state = canonical_to_torch(canonical, self.built.model)
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
    cfg = built.config
    shapes = cfg.input_shapes(batch)
    arrays = host.random_inputs(shapes, seed, cfg.num_classes)
    x0 = host.train_data(built.process, shapes, arrays)  # phase space: data x, network input [x, v]
    draws = built.process.train_draws(np.random.default_rng(seed + 1), host.shape_tree(x0))
    a = device_arrays(built, {"x0": x0, "y": arrays.get("y"), "context": arrays.get("context"),
                              "context_mask": arrays.get("context_mask"), **draws})
    trainer = Trainer(built, compile=compile, **adamw)
    passes = built.process.forward_passes_per_train_step("latents" in built.entry.extras)
    step = Step(lambda: trainer.step(a), a, passes, bool(compile))
    step.notes.append("nfe counts forward passes; the backward pass is extra")
    return _first_call_seconds(step) if compile else step
