"""Thread settings, framework-free: they must be in the environment before torch or jax import.

Who sets what: `pin_threads` (the case process, before either framework starts) puts
`thread_env` in the environment and restricts the CPU affinity; torch reads OMP_NUM_THREADS when
it is imported and the torch adapter's set_threads calls torch.set_num_threads; XLA sizes its pool
from the affinity when jax starts, and the jax adapter's set_threads only reports what applied.
"""

from __future__ import annotations

import os
from typing import Any


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
    """Environment for a case process that sets the intra-op threads of OpenMP (torch reads it at
    import) and BLAS to `threads`.

    XLA has no working intra-op thread-count flag on CPU (it sizes its pool from the CPU
    affinity, which pin_threads restricts); the flag here only turns Eigen's multi-threading
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


def pin_threads(threads: int, cpus: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Apply `thread_env(threads)` to os.environ (XLA_FLAGS appended to any already set) and
    restrict the CPU affinity to `threads` CPUs: XLA sizes its CPU pool from the affinity.
    `cpus`: the case's own choice; otherwise free CPUs are claimed (bench/backends/cpus.py), so
    concurrent runs spread out. Returns what to record ("cpus", "cpu_claim").

    Call in the case's own process before importing jax: XLA reads XLA_FLAGS and sizes its pool
    once, when it starts. torch reads OMP_NUM_THREADS when it is imported too; the torch adapter's
    set_threads (torch.set_num_threads) sets its intra-op threads again at runtime.
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
