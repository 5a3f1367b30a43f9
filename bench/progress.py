"""A progress bar for suite runs (case i/N, current case, elapsed); silent when not a TTY."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, total: int, done: int = 0, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.done, self.failed = total, done, 0
        self._bar = self._task = None

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
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            if status != "ok":
                self._bar.console.print(f"[red]failed[/red] {case_id}")

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.update(self._task, description="done")
            self._bar.__exit__(*exc)
        return False
