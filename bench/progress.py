"""Progress of a suite run on stderr: a bar on a terminal (case i/N, current case, elapsed), one
line per finished case otherwise (logs, CI), nothing with `enabled=False` (--quiet)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, done: int = 0, enabled: bool | None = None):
        tty = sys.stderr.isatty()
        self.enabled = tty if enabled is None else enabled
        self.lines = enabled is None and not tty  # a non-TTY run is not silent for minutes
        self.total, self.done, self.failed = total, done, 0
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

    def start(self, case_id: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"case {self.done + 1}/{self.total} {case_id}")

    def finish(self, case_id: str, status: str) -> None:
        self.done += 1
        self.failed += status != "ok"
        if self.lines:
            elapsed = time.monotonic() - self._started
            print(f"[{self.done}/{self.total}] {status:6s} {case_id} ({elapsed:.0f} s into the run)", file=sys.stderr,
                  flush=True)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            if status != "ok":
                self._bar.console.print(f"[red]failed[/red] {case_id}")

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
