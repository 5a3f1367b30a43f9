"""The efficiency table: one row per case, rebuilt from records alone (never re-runs)."""

from __future__ import annotations

import math

import pandas as pd

# (header, column in the flattened records, format)
COLUMNS = [
    ("case", "case_id", "{}"),
    ("status", "status", "{}"),
    ("params (M)", "params", "{:.2f}", 1e-6),
    ("GFLOPs/NFE", "flops.gflops", "{:.3f}"),
    ("GFLOPs/img", "flops.gflops_per_image", "{:.3f}"),
    ("sample ms", "timing.sample_step.median_ms", "{:.2f}"),
    ("sample img/s", "timing.sample_step.images_per_s", "{:.1f}"),
    ("train ms", "timing.train_step.median_ms", "{:.2f}"),
    ("train img/s", "timing.train_step.images_per_s", "{:.1f}"),
    ("peak RSS (MB)", "memory.peak_rss_bytes", "{:.0f}", 1e-6),
    ("threads", "worker.threads", "{}"),
]


def _cell(value, fmt: str, scale: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float)) and scale != 1:
        value = value * scale
    return fmt.format(value)


def rows(frame: pd.DataFrame) -> list[list[str]]:
    out = []
    for _, rec in frame.iterrows():
        row = []
        for header, column, fmt, *scale in COLUMNS:
            row.append(_cell(rec.get(column), fmt, scale[0] if scale else 1))
        out.append(row)
    return out


def _failures(frame: pd.DataFrame) -> list[str]:
    if "error.message" not in frame:
        return []
    failed = frame[frame["status"] != "ok"]
    return [f"- `{r['case_id']}`: {str(r['error.message']).splitlines()[0]}" for _, r in failed.iterrows()]


def render_markdown(frame: pd.DataFrame) -> str:
    headers = [c[0] for c in COLUMNS]
    lines = ["# diffbench report", ""]
    if "suite" in frame and len(frame):
        runs = ", ".join(sorted(set(frame["suite"] + "/" + frame["run_id"])))
        lines += [f"Runs: {runs}", ""]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(frame)]
    failures = _failures(frame)
    if failures:
        lines += ["", "## Failed cases", "", *failures]
    lines += ["", "GFLOPs = 2 x multiply-accumulates (matmuls, convolutions, attention QK^T and AV) "
              "per forward pass at the case's batch; times are medians per step in milliseconds."]
    return "\n".join(lines) + "\n"
