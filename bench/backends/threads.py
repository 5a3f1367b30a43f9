"""Thread settings, framework-free: they must be in the environment before torch or jax import."""

from __future__ import annotations

import os


def resolve_threads(requested: int | None, cpus: tuple[int, ...] | None = None) -> int:
    """None means one thread per CPU the case names (`cpus:`), else all cores this process may run
    on (its CPU affinity, as under taskset or a container's cpuset), as the case's default."""
    if requested is not None:
        return requested
    if cpus:
        return len(cpus)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity API (macOS)
        return os.cpu_count() or 1


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a case process that pins intra-op threads of torch and BLAS to `threads`.

    XLA has no working intra-op thread-count flag on CPU (it sizes its pool from the CPU
    affinity, which host.pin_threads restricts); the flag here only turns Eigen's multi-threading
    off for one thread."""
    xla = f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
    return {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "XLA_FLAGS": xla,
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # one case must not take 75% of a GPU
        "DIFFBENCH_THREADS": str(threads),
    }
