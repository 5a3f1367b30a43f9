"""Jax devices, threads (reported, not set: see set_threads), PRNG choice and device memory."""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax

from bench.backends.framework_free import DeviceError, parse_device, thread_env
from bench.backends.jax_adapter.timing import configure_cache

NAME = "jax"
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}
# PRNG per use, measured by benchmarks/prng_cost.py (docs/backend-speed.md): threefry for both.
# Weight init: unsafe_rbg's first init call took 4.1-4.4x threefry's on rin-cifar10 (0.83-1.02x on
# rin-tiny). Dropout / stochastic-depth keys in the training step: threefry masks cost ~28 ns per
# element against unsafe_rbg's ~37-41. Seeds stay deterministic per platform. Process randomness
# (t, eps, noise) comes from framework_free.py (numpy).
INIT_PRNG_IMPL = "threefry2x32"
PRNG_IMPL = "threefry2x32"  # dropout / stochastic-depth keys


def resolve_device(spec: str = "cpu") -> jax.Device:
    kind, index = parse_device(spec)
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

    The case process calls bench.backends.threads.pin_threads(threads) before `import jax` (the
    worker does; the runner also passes bench.backends.threads.thread_env). If that did not
    happen, `xla_threads_applied` is False in the record and a warning says so.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    cpus = len(os.sched_getaffinity(0))
    applied = thread_env(threads)["XLA_FLAGS"] in flags and cpus <= threads
    if not applied:
        warnings.warn(f"jax threads={threads} not applied (XLA_FLAGS={flags!r}, {cpus} CPUs in affinity): call "
                      "bench.backends.threads.pin_threads(n) before importing jax", RuntimeWarning, stacklevel=2)
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


def _memory_stats(device) -> dict | None:
    device = resolve_device(device) if isinstance(device, str) else device
    return device.memory_stats() if hasattr(device, "memory_stats") else None


def reset_peak_memory(device) -> int | None:
    """XLA cannot reset its peak counter (it is the process's lifetime peak): returns its value now,
    the mark `peak_memory_span(device, since=mark)` compares with to tell whether the steps since
    then reached the peak."""
    stats = _memory_stats(device)
    return None if not stats else stats.get("peak_bytes_in_use")


def peak_memory(device) -> int | None:
    """device.memory_stats()['peak_bytes_in_use'] (the process's lifetime peak) where the platform
    provides it (GPU/TPU), else None."""
    stats = _memory_stats(device)
    return None if not stats or "peak_bytes_in_use" not in stats else int(stats["peak_bytes_in_use"])


def peak_memory_span(device, since: int | None = None) -> dict:
    """{"bytes", "covers"}: the peak since reset_peak_memory (its mark: `since`) when the lifetime
    peak rose in that span (then it is that span's peak, as torch's); otherwise the lifetime peak,
    labelled an upper bound."""
    peak = peak_memory(device)
    if peak is None:
        return {"bytes": None, "covers": None}
    if since is not None and peak > since:
        return {"bytes": peak, "covers": "the timed steps (the process's peak rose during them)"}
    return {"bytes": peak, "covers": "upper bound: the process's peak, reached before the timed steps (init, compile "
                                     "or autotuning); XLA cannot reset it"}


def program_peak_bytes(compiled) -> int | None:
    """XLA's own estimate of a compiled program's device memory (arguments, outputs, temporaries)."""
    try:
        return int(compiled.memory_analysis().peak_memory_in_bytes)
    except Exception:  # not compiled (eager), or a backend without memory analysis
        return None
