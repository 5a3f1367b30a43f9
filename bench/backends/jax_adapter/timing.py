"""How a jax step is timed: block_until_ready (dispatch is asynchronous on every platform), the
host wall clock as device time, and the ahead-of-time compile measured apart from the step, with
whether the persistent compilation cache served it."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple

import jax

from bench.backends.jax_adapter.precision import Policy

JIT_NOTE = ("jax: jit-compiled ahead of time, compile_s apart from the step (a suite's compile: none is refused "
            "for jax; the compile setting is torch.compile's)")
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # for one-off programs (init), never timed ones
CACHE_ENV = "DIFFBENCH_JAX_CACHE_DIR"  # the persistent compilation cache, when set


def sync(x: Any = None) -> Any:
    """jax dispatch is asynchronous on every platform, CPU included."""
    return jax.block_until_ready(x)


def device_timer(device) -> None:
    """jax has no event API outside its profiler: host wall clock after block_until_ready."""
    return None


class Compiled(NamedTuple):
    """A step's program and what its compile cost: seconds and the persistent cache's state
    ('warm' / 'cold'; None without a cache or without a compile)."""

    run: Callable
    seconds: float | None
    cache_state: str | None


def aot(fn, args: tuple, compile: bool | None, donate: tuple[int, ...] = (), policy=None,
        options: dict | None = None) -> Compiled:
    """jit(fn).lower(*args).compile(), or fn itself un-jitted (compile=False); traced under the
    policy's matmul precision."""
    policy = policy or Policy()
    if compile is False:
        def eager(*a):
            with policy.tracing():
                return fn(*a)
        return Compiled(eager, None, None)
    start, before = time.perf_counter(), _cache_entries()
    with policy.tracing():
        compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile(compiler_options=options)
    return Compiled(compiled, time.perf_counter() - start, _cache_state(before, _cache_entries()))


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


def _cache_state(before: int | None, after: int | None) -> str | None:
    """'warm' when the persistent cache served the program (nothing new written), 'cold' when this
    compile wrote it; None without a cache."""
    if after is None:
        return None
    return "cold" if after > (before or 0) else "warm"
