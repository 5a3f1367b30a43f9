"""Every Python child diffbench starts (case workers, FLOP counters, the CPU peak) starts here:
`python -P -m <module>` with this diffbench first on PYTHONPATH, so nothing in the working
directory (a ./bench/ folder) can stand in for it, and it never outlives its parent: a killed
runner or worker leaves no orphan running.

The child arms the latter itself, first thing (a preexec_fn would run Python between fork and
exec, which can deadlock when the parent has threads, e.g. once jax is imported).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PARENT_ENV = "DIFFBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1
CODE_ROOT = Path(__file__).resolve().parents[1]  # the diffbench every child must run


def python_child(module: str, *args: str, env: dict | None = None) -> tuple[list[str], dict]:
    """(command, environment) of `python -P -m module args...`: -P keeps the current directory
    off sys.path; PYTHONPATH puts the package root first (see child_env)."""
    return [sys.executable, "-P", "-m", module, *args], child_env(env)


def child_env(env: dict | None = None) -> dict:
    """The environment for a Python child that dies with this process and imports this
    diffbench: PYTHONPATH is the package root, then the caller's PYTHONPATH, then the current
    directory (for plugin modules that live there, never ahead of diffbench)."""
    env = dict(os.environ if env is None else env)
    parts = [str(CODE_ROOT), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p], os.getcwd()]
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(parts)), PARENT_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """Ask the kernel (Linux) for SIGKILL when the parent dies; exit now if it already has."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: children may outlive a killed parent
        return
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(1)
