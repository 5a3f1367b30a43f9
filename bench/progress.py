"""Progress of a suite run on stderr: a bar on a terminal (case i/N, current case, elapsed, an ETA
from the cases this run finished), one line per finished case otherwise (logs, CI; a failed case's
line carries its error), nothing with `enabled=False` (--quiet)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, done: int = 0, enabled: bool | None = None):
        tty = sys.stderr.isatty()
        self.enabled = tty if enabled is None else enabled
        self.lines = enabled is None and not tty  # a non-TTY run is not silent for minutes
        self.total, self.done, self.failed = total, done, 0
        self._resumed = done  # cases finished by an earlier run (--resume) say nothing about this one's pace
        self._bar = self._task = None
        self._started = time.monotonic()

    def __enter__(self):
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                       TimeElapsedColumn)
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task("starting", total=self.total, completed=self.done)
        return self

    def eta(self) -> str:
        """'ETA 3 min' from the mean duration of the cases this run finished ('' before the first)."""
        ran = self.done - self._resumed
        if ran < 1 or self.done >= self.total:
            return ""
        left = (time.monotonic() - self._started) / ran * (self.total - self.done)
        return f"ETA {left:.0f} s" if left < 90 else f"ETA {left / 60:.0f} min"

    def start(self, case_id: str) -> None:
        if self._bar is not None:
            eta = self.eta()
            self._bar.update(self._task, description=f"case {self.done + 1}/{self.total} {case_id}"
                                                     + (f" · {eta}" if eta else ""))

    def finish(self, case_id: str, status: str, error: dict | None = None) -> None:
        self.done += 1
        self.failed += status != "ok"
        why = reason(error) if status != "ok" else ""
        if self.lines:
            elapsed = time.monotonic() - self._started
            print(f"[{self.done}/{self.total}] {status:6s} {case_id} ({elapsed:.0f} s into the run)"
                  + (f": {why}" if why else ""), file=sys.stderr, flush=True)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            if status != "ok":
                from rich.markup import escape

                self._bar.console.print(f"[red]failed[/red] {escape(case_id)}: {escape(why)}")

    def round_done(self, label: str, status: str) -> None:
        """A round of a case that has rounds left (bench/rounds.py): a line, the bar stays."""
        if self.lines:
            elapsed = time.monotonic() - self._started
            print(f"[{self.done}/{self.total}] {status:6s} {label} ({elapsed:.0f} s into the run)", file=sys.stderr,
                  flush=True)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.update(self._task, description="done")
            self._bar.__exit__(*exc)
        return False


def reason(error) -> str:
    """A failed case's error on one terminal-safe line: 'Type: first line of the message'."""
    from bench.strict_yaml import printable

    if not isinstance(error, dict):
        return "no error recorded"
    message = str(error.get("message") or "").strip().splitlines()
    return printable(f"{error.get('type') or 'Error'}: {message[0] if message else '(no message)'}", 300)
