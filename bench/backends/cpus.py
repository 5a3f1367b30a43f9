"""Which CPUs a case runs on. Framework-free (called before torch or jax start).

A case may name its CPUs (`cpus:` in a suite). Otherwise a worker takes `threads` CPUs of its
affinity that no other diffbench process on this machine holds: each CPU has a lock file, held
(flock) for the life of the process, so concurrent 1-thread runs spread over CPUs 0, 1, 2, ...
instead of all landing on CPU 0. When fewer CPUs are free than asked for, the free ones are
topped up with the lowest-numbered CPUs other processes hold (no load is measured), and the
record says `shared`.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(os.environ.get("DIFFBENCH_CPU_LOCKS", Path(tempfile.gettempdir()) / "diffbench-cpus"))
_held: dict[int, int] = {}  # cpu -> fd, for the life of this process


def allowed() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def claim(threads: int, requested: tuple[int, ...] | None = None) -> dict:
    """CPUs for this process: {"cpus": [...], "claim": "requested" | "exclusive" | "shared"}."""
    cpus = allowed()
    if requested is not None:
        missing = sorted(set(requested) - set(cpus))
        if missing:
            raise ValueError(f"cpus {missing} are not in this process's CPU affinity {cpus}")
        return {"cpus": sorted(requested)[:threads], "claim": "requested"}
    got = [c for c in cpus if _try_lock(c)]
    if len(got) >= threads:
        for c in got[threads:]:
            _release(c)
        return {"cpus": got[:threads], "claim": "exclusive"}
    rest = [c for c in cpus if c not in got]  # held by other diffbench processes: shared
    return {"cpus": sorted(got + rest[: threads - len(got)]), "claim": "shared"}


def _try_lock(cpu: int) -> bool:
    if cpu in _held:
        return True
    try:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK_DIR / f"cpu{cpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # no writable temp dir: behave as if every CPU were free
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held[cpu] = fd
    return True


def _release(cpu: int) -> None:
    fd = _held.pop(cpu, None)
    if fd is not None:
        os.close(fd)
