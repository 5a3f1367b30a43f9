"""Stops the local Ray cluster a diffbench driver started once that driver is gone, however it
went: a SIGKILLed driver would otherwise leave Ray's dashboard and runtime-env agents (and any
worker still holding a case) running. Ray's own shutdown runs only on a normal exit.

The driver starts this file as its own process, in its own session, with a pipe on its stdin that
only the driver holds: the pipe closes when the driver exits for any reason (the kernel closes
it, even after SIGKILL). Until then the watchdog notes every descendant of the cluster's
processes (pid and start time, so a reused pid is never hit); at end of file it sends SIGTERM to
those still running, then SIGKILL after a grace period. Standard library and psutil only.

    python -P ray_watchdog.py PID:START_TIME [PID:START_TIME ...]
"""

from __future__ import annotations

import os
import select
import signal
import sys

import psutil

POLL_S = 2.0  # how often the cluster's process tree is re-read while the driver lives
GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long


def _key(proc: psutil.Process):
    return proc.pid, proc.create_time()


def _same(pid: int, started: float) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        return proc if proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def note_descendants(known: dict) -> None:
    """Add every living descendant of the known processes (in place)."""
    for pid, started in list(known):
        proc = _same(pid, started)
        if proc is None:
            continue
        try:
            for child in proc.children(recursive=True):
                known.setdefault(_key(child), " ".join(child.cmdline())[:80])
        except psutil.Error:
            continue


def stop(known: dict, grace: float = GRACE_S) -> list[int]:
    """SIGTERM the known processes still running, SIGKILL what is left after `grace`; their pids."""
    alive = [p for p in (_same(pid, started) for pid, started in known) if p is not None]
    for proc in alive:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=grace)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=grace)
    return [p.pid for p in alive]


def watch(roots: list[tuple[int, float]], stdin_fd: int = 0) -> list[int]:
    known = {root: "" for root in roots}
    while True:
        note_descendants(known)
        ready, _, _ = select.select([stdin_fd], [], [], POLL_S)
        if ready and not os.read(stdin_fd, 4096):  # end of file: the driver is gone
            break
    return stop(known)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver is not for us
    roots = []
    for item in argv:
        pid, _, started = item.partition(":")
        roots.append((int(pid), float(started)))
    watch(roots)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
