"""`diffbench plan SUITE`: a suite's expanded cases as a text table, nothing run."""

from __future__ import annotations

import json


def format_plan(suite) -> str:
    """The expanded cases as a text table (`diffbench plan SUITE`)."""
    head = [f"suite {suite.name}: {len(suite.cases)} case(s) from {suite.path} (sha256 {suite.content_sha256[:12]})"]
    if suite.plugins:
        head.append("plugins: " + ", ".join(suite.plugins))
    rows = [("#", "id", "measure", "timeout", "rounds", "threads", "overrides")]
    for c in suite.cases:
        overrides = json.dumps(c.overrides.to_dict(), sort_keys=True) if c.overrides else "-"
        threads = "all" if c.threads is None else str(c.threads)
        rounds = str(c.rounds) if {"sample_step", "train_step"} & set(c.measure) else "-"  # only timed steps repeat
        rows.append((str(c.index), c.id, ",".join(c.measure), f"{c.timeout_s:g}s", rounds, threads, overrides))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return "\n".join(head + lines)
