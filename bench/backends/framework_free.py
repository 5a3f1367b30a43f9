"""What both backend adapters share, framework-free (nothing here imports torch or jax, so one
seed gives the same numbers in both): device-spec parsing, thread pinning, the random draws
(numpy, canonical channels-last) of a train step, a sampler step and a sampling run, the AdamW
settings, how a network output becomes the process's prediction, and the records an adapter
returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from bench.backends.threads import pin_threads, thread_env  # noqa: F401  (re-exported: the one definitions)
from bench.backends import null_text

# AdamW in both backends (torch.optim.AdamW, optax.adamw), decoupled weight decay on matrices
# and kernels only (not biases / norm scales, as the paper's LAMB setup excludes them). The
# paper's LAMB + warmup + EMA is a training-recipe choice, not an architecture cost.
ADAMW = dict(lr=1e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
X_LIKE = ("x", "x0", "eps", "noise", "context")  # arrays with the data layout (transposed by torch)
TRAIN_STEP_NOTE = "nfe counts forward passes; the backward pass is extra"


def adamw_settings(opt=None, **overrides) -> dict[str, Any]:
    """lr, b1, b2, eps, weight_decay of an AdamW: ADAMW with `overrides` (timing), or those of an
    OptimSpec `opt` (whose lr is its base rate; the schedule is applied per step)."""
    if opt is None:
        return {**ADAMW, **overrides}
    return dict(lr=opt.lr, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay)


def dtype_names(precision: str) -> dict[str, str]:
    """The compute and parameter dtypes a precision policy names, for the record."""
    compute = {"fp32": "float32", "tf32": "tf32", "bf16": "bfloat16", "fp16": "float16", "bf16-pure": "bfloat16"}
    return {"compute_dtype": compute[precision],
            "param_dtype": "bfloat16" if precision == "bf16-pure" else "float32"}


class DeviceError(RuntimeError):
    """A device that is unknown or not available to this backend; the message says what was found."""


def parse_device(spec: str) -> tuple[str, int | None]:
    """"cpu" | "cuda" | "cuda:1" | "tpu" | "tpu:0" | "auto" -> (kind, index or None)."""
    m = re.fullmatch(r"(cpu|cuda|tpu|auto)(?::([0-9]{1,3}))?", str(spec).strip().lower())
    if not m or (m.group(1) in ("cpu", "auto") and m.group(2)):
        raise DeviceError(f"unknown device {spec!r}; allowed: cpu, cuda, cuda:<i>, tpu, tpu:<i>, auto")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


# -- records ---------------------------------------------------------------------------------
@dataclass
class Built:
    """A model ready to run: the framework module plus its weights (jax) or none (torch)."""

    backend: str
    entry: Any  # registry Entry
    config: Any  # the resolved config dataclass
    model: Any
    params: Any  # jax variables (arrays or ShapeDtypeStructs when abstract); torch: None
    device: Any
    process: Any  # the entry's process family (make_process), built from config.process
    seed: int
    abstract: bool = False
    policy: Any = None  # the adapter's precision/kernel policy (<adapter>/precision.py Policy)


@dataclass
class Step:
    """A zero-argument callable to time, with what it consumes and costs.

    fn() returns the step's outputs (sample step: (x_next, latents); train step: the loss);
    check them with the adapter's `all_finite` outside the timed region.
    """

    fn: Callable[[], Any]
    inputs: dict[str, Any]
    nfe: int  # network forward passes per call (guidance: 2; self-cond training: 2 fwd + 1 bwd)
    compiled: bool
    compile_seconds: float | None = None  # jax AOT lower+compile; torch.compile: first call
    notes: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # recorded with the timing: graph breaks, cache state, graphs


@dataclass
class SampleRun:
    """A full sampling run: samples (B, ...) canonical channels-last, and what it cost."""

    x: np.ndarray
    nfe: int  # network evaluations per sample as they ran (guidance passes included)
    steps: int  # sampler steps


def call_kwargs(extras: tuple[str, ...], y, context, latents, context_mask=None) -> dict[str, Any]:
    """The model call's optional arguments: labels when given, and the extras the entry declares.
    A batched guided call has twice the labels of the sampler's batch: the context and its mask
    are repeated to match ([x; x] sees [context; context])."""
    kwargs = {} if y is None else {"y": y}
    if "context" in extras and context is not None:
        kwargs["context"] = repeat_rows(context, None if y is None else y.shape[0])
    if "context_mask" in extras and context_mask is not None:  # NestedUNet: which conditioning tokens are real
        kwargs["context_mask"] = repeat_rows(context_mask, None if y is None else y.shape[0])
        if y is not None and "context" in kwargs:  # tokens: y holds keep flags, 0 = the null text (null_text.py)
            kwargs["context"], kwargs["context_mask"] = null_text.apply(kwargs["context"], kwargs["context_mask"],
                                                                        kwargs.pop("y"))
    if "latents" in extras:
        kwargs["latents"] = latents
    return kwargs


def network_output(out, x, extras: tuple[str, ...], cast: Callable, channel_axis: int):
    """A model call's output -> (prediction, latents or None) for the process: `cast` (the policy's
    output cast) on each, learn_sigma outputs split; x and the prediction may be lists."""
    pred, latents = out if "latents" in extras else (out, None)
    if isinstance(pred, (list, tuple)):
        return [split_variance(cast(p), xi, channel_axis) for p, xi in zip(pred, x)], cast(latents)
    return split_variance(cast(pred), x, channel_axis), cast(latents)


def split_variance(pred, x, channel_axis: int):
    """learn_sigma models output [prediction | v] on channels (iDDPM): the process gets the pair
    (prediction, v) and trains/samples the learned variance; any other output passes as is."""
    c = x.shape[channel_axis]
    if pred.shape[channel_axis] != 2 * c:
        return pred
    lead = (slice(None),) * channel_axis if channel_axis >= 0 else (Ellipsis,)
    return pred[(*lead, slice(None, c))], pred[(*lead, slice(c, None))]


def latent_shape(config) -> tuple[int, ...] | None:
    """The per-example shape of the model's latents (RIN), None without them."""
    shapes = config.input_shapes(1)
    return shapes["latents"][0][1:] if "latents" in shapes else None


def rows(x) -> int:
    """The batch size of a network input (a list, one per resolution: its first entry's)."""
    return (x[0] if isinstance(x, (list, tuple)) else x).shape[0]


def repeat_rows(a, n: int | None):
    """a (torch, jax or numpy) stacked along its first axis up to n rows (None: as is)."""
    if n is None or a.shape[0] == n:
        return a
    if n % a.shape[0]:
        raise ValueError(f"cannot repeat {a.shape[0]} rows to {n}")
    from array_api_compat import array_namespace

    return array_namespace(a).concat([a] * (n // a.shape[0]), axis=0)


# -- input trees --------------------------------------------------------------------------------
# An input of config.input_shapes may be one (shape, dtype) or a list of them (NestedUNet: one x
# per resolution, highest first); the drawn arrays, the model's outputs and the process's x then
# are lists too. These helpers keep the adapters free of per-family cases.
def is_spec_list(spec) -> bool:
    return isinstance(spec, list)


def shape_tree(x):
    """x.shape, or a list of shapes for a list of arrays."""
    return [tuple(a.shape) for a in x] if isinstance(x, (list, tuple)) else tuple(x.shape)


def tree_map(fn, x):
    """fn over an array or each array of a list/tuple (None stays None)."""
    if x is None:
        return None
    return [fn(a) for a in x] if isinstance(x, (list, tuple)) else fn(x)


def x_shape(shapes: dict):
    """The shape of input "x" from config.input_shapes: a tuple, or a list of tuples."""
    spec = shapes["x"]
    return [tuple(s) for s, _ in spec] if is_spec_list(spec) else tuple(spec[0])


# -- random draws (canonical layout, numpy; a process draws its own: process.train_draws, ...) --
def random_inputs(shapes: dict[str, tuple[tuple[int, ...], str]], seed: int, num_classes: int) -> dict[str, np.ndarray]:
    """Model inputs from config.input_shapes(batch): x, context, latents ~ N(0, 1); t ~ U(0, 1);
    y uniform labels; a `*_mask` (B, L) is 1 on a random-length prefix (>= 1 token) and 0 after."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in shapes.items():
        if is_spec_list(spec):
            out[name] = [rng.standard_normal(shape).astype(dtype) for shape, dtype in spec]
            continue
        shape, dtype = spec
        if name.endswith("_mask"):
            lengths = rng.integers(1, shape[-1] + 1, shape[:-1])
            out[name] = (np.arange(shape[-1]) < lengths[..., None]).astype(dtype)
        elif name == "t":
            out[name] = rng.uniform(0.0, 1.0, shape).astype(dtype)
        elif name == "y":
            out[name] = rng.integers(0, max(num_classes, 1), shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def make_process(entry, config, channel_axis: int = -1):
    """The entry's process family, built from config.process; channel_axis: the backend layout's."""
    from architectures import registry

    return registry.process_class(entry.process)(config.process, channel_axis=channel_axis)


def train_data(process, shapes: dict, arrays: dict) -> dict:
    """The train step's data x0: the network input x when the process's data has its shape, else
    N(0, I) of process.data_shape (phase space: the network sees [x, v], the data is x)."""
    shape = process.data_shape(x_shape(shapes))
    if shape == shape_tree(arrays["x"]):
        return arrays["x"]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def train_arrays(built: Built, batch: int, seed: int) -> dict[str, Any]:
    """A timed train step's fixed draws: x0 (phase space: data x, network input [x, v]), the
    labels / context of random_inputs and the process's train draws (t, eps, ...)."""
    shapes = built.config.input_shapes(batch)
    arrays = random_inputs(shapes, seed, built.config.num_classes)
    x0 = train_data(built.process, shapes, arrays)
    draws = built.process.train_draws(np.random.default_rng(seed + 1), shape_tree(x0))
    return {"x0": x0, "y": arrays.get("y"), "context": arrays.get("context"),
            "context_mask": arrays.get("context_mask"), **draws}


def sample_step_arrays(built: Built, batch: int, seed: int, step_index: int | None) -> tuple[dict, tuple]:
    """A timed sampler step's inputs (random_inputs), its times t_now / t_next (default: the middle
    step), null labels and the process's draws for that step; returns (arrays, the draws' names)."""
    cfg, process = built.config, built.process
    arrays = random_inputs(cfg.input_shapes(batch), seed, cfg.num_classes)
    k = cfg.process.sample_steps // 2 if step_index is None else step_index
    t_now, t_next = process.time_grid()[k]
    draws = process.sample_step_draws(np.random.default_rng(seed + 1), shape_tree(arrays["x"]),
                                      cfg.process.sample_steps, only=k)[0]
    y, y_null = guidance_labels(cfg, arrays.get("y"), batch)  # tokens under guidance: keep flags (null_text.py)
    arrays.update(draws, y=y, y_null=y_null,
                  t_now=np.full((batch,), t_now, np.float32), t_next=np.full((batch,), t_next, np.float32))
    return arrays, tuple(draws)


def generate_from(sampling_run: Callable) -> Callable:
    """An adapter's `generate`: the samples of its `sampling_run`."""
    def generate(built: Built, batch: int, *, seed: int = 0, steps: int | None = None, labels=None,
                 context=None) -> np.ndarray:
        """sampling_run(...).x: (B, ...) numpy samples, canonical channels-last, in [-1, 1]."""
        return sampling_run(built, batch, seed=seed, steps=steps, labels=labels, context=context).x

    return generate


def null_labels(y: np.ndarray | None, num_classes: int) -> np.ndarray | None:
    """The classifier-free-guidance null label: num_classes (reserved by the contract)."""
    return None if y is None else np.full_like(y, num_classes)


def conditional(config) -> bool:
    """The model has a condition guidance can drop: class labels, or conditioning tokens (their
    mask marks them; the null is null_text.py's)."""
    return config.num_classes > 0 or "context_mask" in config.input_shapes(1)


def guidance_labels(config, y: np.ndarray | None, batch: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(y, y_null) of a sampler: class labels and the null label; a token-conditioned model under
    guidance (guidance_scale > 0): keep flags 1 and 0 (its drawn tokens and the null text)."""
    if config.num_classes > 0 or not conditional(config):
        return y, null_labels(y, config.num_classes)
    if getattr(config.process, "guidance_scale", 0) <= 0:
        return None, None
    return null_text.keep_flags(batch), null_text.keep_flags(batch, keep=False)


def sampling_draws(config, process, batch: int, seed: int, steps: int, labels=None, context=None) -> dict[str, Any]:
    """Everything random a full sampling run needs, canonical layout: x_init ~ N(0, I), the
    process's draws for each step (`step_draws`, e.g. DDPM noise), labels (uniform unless given)
    and their null labels, zero latents (the first step's Z_prev) when the model has them."""
    rng = np.random.default_rng(seed)
    shapes = config.input_shapes(batch)
    xs = x_shape(shapes)
    drawn = random_inputs({k: v for k, v in shapes.items() if k in ("context", "context_mask")}, seed + 1, 0)
    y = None
    if config.num_classes > 0:
        y = np.asarray(labels, np.int32) if labels is not None else rng.integers(0, config.num_classes, batch).astype(np.int32)
    x = [rng.standard_normal(s).astype(np.float32) for s in xs] if isinstance(xs, list) else \
        rng.standard_normal(xs).astype(np.float32)
    if context is None and "context_mask" in shapes:  # conditioning tokens, not data: drawn like the inputs
        context = drawn["context"]
    y, y_null = guidance_labels(config, y, batch)  # tokens under guidance: keep flags (null_text.py)
    return {"x": x,
            "step_draws": process.sample_step_draws(rng, xs, steps),
            "y": y, "y_null": y_null if getattr(config.process, "guidance_scale", 0) > 0 else None,
            "latents": np.zeros(shapes["latents"][0], np.float32) if "latents" in shapes else None,
            "context": None if "context" not in shapes else np.asarray(context, np.float32),
            "context_mask": drawn.get("context_mask")}
