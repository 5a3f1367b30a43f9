"""Children that never outlive their parent: a killed runner or worker leaves no orphan running.

The child arms this itself, first thing (a preexec_fn would run Python between fork and exec,
which can deadlock when the parent has threads, e.g. once jax is imported).
"""

from __future__ import annotations

import ctypes
import os
import signal

PARENT_ENV = "DIFFBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1


def child_env(env: dict | None = None) -> dict:
    """The environment for a child that should die with this process."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """Ask the kernel (Linux) for SIGKILL when the parent dies; exit now if it already has."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: children may outlive a killed parent
        return
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(1)
