"""Framework-free pieces both backend adapters share: device-spec parsing, thread environment,
the random draws (numpy, canonical channels-last), the optimizer settings and the records an
adapter returns. Nothing here imports torch or jax, so one seed gives the same numbers in both.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from bench.backends.threads import thread_env  # re-exported: the one definition

DEVICE_KINDS = ("cpu", "cuda", "tpu", "auto")
# AdamW in both backends (torch.optim.AdamW, optax.adamw), decoupled weight decay on matrices
# and kernels only (not biases / norm scales, as the paper's LAMB setup excludes them). The
# paper's LAMB + warmup + EMA is a training-recipe choice, not an architecture cost.
ADAMW = dict(lr=1e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
X_LIKE = ("x", "x0", "eps", "noise", "context")  # arrays with the data layout (transposed by torch)


class DeviceError(RuntimeError):
    """A device that is unknown or not available to this backend; the message says what was found."""


def parse_device(spec: str) -> tuple[str, int | None]:
    """"cpu" | "cuda" | "cuda:1" | "tpu" | "tpu:0" | "auto" -> (kind, index or None)."""
    m = re.fullmatch(r"(cpu|cuda|tpu|auto)(?::([0-9]{1,3}))?", str(spec).strip().lower())
    if not m or (m.group(1) in ("cpu", "auto") and m.group(2)):
        raise DeviceError(f"unknown device {spec!r}; allowed: cpu, cuda, cuda:<i>, tpu, tpu:<i>, auto")
    return m.group(1), None if m.group(2) is None else int(m.group(2))


def pin_threads(threads: int, cpus: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Apply `thread_env(threads)` to os.environ (XLA_FLAGS appended to any already set) and
    restrict the CPU affinity to `threads` CPUs: XLA sizes its CPU pool from the affinity.
    `cpus`: the case's own choice; otherwise free CPUs are claimed (bench/backends/cpus.py), so
    concurrent runs spread out. Returns what to record ("cpus", "cpu_claim").

    Call in the case's own process before importing jax (torch reads its setting at runtime).
    """
    from bench.backends import cpus as cpu_claims

    if threads < 1:
        raise ValueError(f"threads={threads!r}; allowed: >= 1")
    env = thread_env(threads)
    flags = os.environ.get("XLA_FLAGS", "")
    if env["XLA_FLAGS"] not in flags:
        env["XLA_FLAGS"] = f"{flags} {env['XLA_FLAGS']}".strip()
    else:
        env["XLA_FLAGS"] = flags
    os.environ.update(env)
    available = cpu_claims.allowed()
    if threads > len(available):
        raise ValueError(f"threads={threads} but this process may use {len(available)} CPUs: {available}")
    claimed = cpu_claims.claim(threads, cpus)
    os.sched_setaffinity(0, set(claimed["cpus"]))
    return {"threads": threads, "cpus": claimed["cpus"], "cpu_claim": claimed["claim"], "env": env}


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
    process: Any  # the entry's process family (host.make_process), built from config.process
    seed: int
    abstract: bool = False
    policy: Any = None  # the adapter's precision/kernel policy (torch_precision / jax_precision .Policy)


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


def call_kwargs(extras: tuple[str, ...], y, context, latents) -> dict[str, Any]:
    """The model call's optional arguments: labels when given, and the extras the entry declares."""
    kwargs = {} if y is None else {"y": y}
    if "context" in extras and context is not None:
        kwargs["context"] = context
    if "latents" in extras:
        kwargs["latents"] = latents
    return kwargs


# -- random draws (canonical layout, numpy) --------------------------------------------------
def random_inputs(shapes: dict[str, tuple[tuple[int, ...], str]], seed: int, num_classes: int) -> dict[str, np.ndarray]:
    """Model inputs from config.input_shapes(batch): x, context, latents ~ N(0, 1); t ~ U(0, 1);
    y uniform labels."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, dtype) in shapes.items():
        if name == "t":
            out[name] = rng.uniform(0.0, 1.0, shape).astype(dtype)
        elif name == "y":
            out[name] = rng.integers(0, max(num_classes, 1), shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def train_draws(rng: np.random.Generator, x_shape: tuple[int, ...], self_condition_rate: float) -> dict[str, np.ndarray]:
    """The gaussian process's draws: t ~ U(0, 1), eps ~ N(0, I) like x, keep ~ Bernoulli(rate).
    (Adapters ask `built.process.train_draws`, which every process family defines.)"""
    from architectures.processes.config import GaussianConfig
    from architectures.processes.gaussian import GaussianProcess

    return GaussianProcess(GaussianConfig(self_condition_rate=self_condition_rate)).train_draws(rng, x_shape)


def make_process(entry, config):
    """The entry's process family, built from config.process."""
    from architectures import registry

    return registry.process_class(entry.process)(config.process)


def sample_noise(rng: np.random.Generator, x_shape: tuple[int, ...], steps: int) -> list[np.ndarray]:
    """One N(0, I) array per sampler step (DDPM), plus none for DDIM callers to ignore."""
    return [rng.standard_normal(x_shape).astype(np.float32) for _ in range(steps)]


def null_labels(y: np.ndarray | None, num_classes: int) -> np.ndarray | None:
    """The classifier-free-guidance null label: num_classes (reserved by the contract)."""
    return None if y is None else np.full_like(y, num_classes)


def sampling_draws(config, process, batch: int, seed: int, steps: int, labels=None, context=None) -> dict[str, Any]:
    """Everything random a full sampling run needs, canonical layout: x_init ~ N(0, I), the
    process's draws for each step (`step_draws`, e.g. DDPM noise), labels (uniform unless given)
    and their null labels, zero latents (the first step's Z_prev) when the model has them."""
    rng = np.random.default_rng(seed)
    shapes = config.input_shapes(batch)
    x_shape = shapes["x"][0]
    y = None
    if config.num_classes > 0:
        y = np.asarray(labels, np.int32) if labels is not None else rng.integers(0, config.num_classes, batch).astype(np.int32)
    return {"x": rng.standard_normal(x_shape).astype(np.float32),
            "step_draws": process.sample_step_draws(rng, x_shape, steps),
            "y": y, "y_null": null_labels(y, config.num_classes) if getattr(config.process, "guidance_scale", 0) > 0 else None,
            "latents": np.zeros(shapes["latents"][0], np.float32) if "latents" in shapes else None,
            "context": None if "context" not in shapes else np.asarray(context, np.float32)}
