"""A run directory's lock and its memory-kill evidence: what keeps two runners apart and lets a
SIGKILL say whether it was the OOM killer; and RunError, for a run that cannot start or resume.

The lock is an flock on RUN_DIR/.lock, held for the whole run: the kernel drops it when the
holder exits or is killed, so a crashed runner never leaves a stale lock behind (self-healing).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path

LOCK_FILE = ".lock"


class RunError(RuntimeError):
    """A run that cannot start or resume; the message says why and what to do."""


class LockedError(RuntimeError):
    """Another runner works in this run directory; the message names it."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockedError(f"{self.path.parent}: in use by another runner ({holder}); wait for it to end, "
                              "or stop it and resume") from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None
        return False


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


# -- memory kills -------------------------------------------------------------------------------
def cgroup_memory_events(proc_cgroup="/proc/self/cgroup", root="/sys/fs/cgroup") -> Path | None:
    """The file where the kernel counts OOM kills in this process's memory cgroup (`oom_kill N`):
    cgroup v2's memory.events, or cgroup v1's memory.oom_control (kernel >= 4.13) under the
    memory controller's mount, at the process's path or, inside a container that sees its own
    cgroup as the mount's root, at that root."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    root = Path(root)
    for line in lines:
        hierarchy, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        rel = rel.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":  # v2 (unified)
            path = root / rel / "memory.events"
            if path.is_file():
                return path
        elif "memory" in controllers.split(","):  # v1: memory controller, mounted as memory/ or e.g. memory,x/
            for base in dict.fromkeys([root / "memory", root / controllers]):
                for path in (base / rel / "memory.oom_control", base / "memory.oom_control"):
                    if path.is_file():
                        return path
    return None


def oom_kills(events: Path | None) -> int | None:
    """The `oom_kill` counter of a v2 memory.events or v1 memory.oom_control file (None when
    unreadable, or on a v1 kernel too old to count kills there)."""
    if events is None:
        return None
    try:
        for line in events.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


class RssWatch:
    """Peak resident memory of a process group, sampled every `interval` seconds in a thread."""

    def __init__(self, pgid: int, interval: float = 0.2):
        self.pgid, self.interval, self.peak = pgid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def _run(self):
        import psutil

        while not self._stop.wait(self.interval):
            total = 0
            for proc in psutil.process_iter(["pid"]):
                try:
                    if os.getpgid(proc.pid) == self.pgid:
                        total += proc.memory_info().rss
                except (psutil.Error, ProcessLookupError, PermissionError):
                    continue
            self.peak = max(self.peak, total)


def sigkill_message(oom_delta: int | None, peak_rss: int) -> str:
    """What a SIGKILL most likely was, from the cgroup's OOM counter and the RSS seen."""
    rss = f"peak RSS seen {peak_rss / 2**20:.0f} MiB"
    if oom_delta:
        return f"killed by the kernel's OOM killer (cgroup oom_kill counter +{oom_delta}); {rss}"
    why = "no OOM kill counted in this cgroup" if oom_delta == 0 else "the cgroup's OOM counter is unreadable"
    return (f"SIGKILL often means out of memory (the kernel's OOM killer or a memory limit); {why}; {rss}; "
            "or it was killed by hand")
