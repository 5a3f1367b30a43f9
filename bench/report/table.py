"""The efficiency table: one row per case, rebuilt from records alone (never re-runs)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# (header, column in the flattened records, format)
COLUMNS = [
    ("case", "case_id", "{}"),
    ("status", "status", "{}"),
    ("params (M)", "params", "{:.2f}", 1e-6),
    ("GFLOPs/NFE", "flops.gflops", "{:.3f}"),
    ("GFLOPs/img", "flops.gflops_per_image", "{:.3f}"),
    ("FLOP check", "flops.agreement.ok", "{}"),
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
    if isinstance(value, (bool, np.bool_)):  # the counters' agreement flag (docs/measurement.md)
        return "agree" if value else "**DISAGREE**"
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


def _disagreements(frame: pd.DataFrame) -> list[str]:
    """Counters more than the tolerance away from the analytic count, named per case."""
    if "flops.agreement.ok" not in frame:
        return []
    bad = frame[frame["flops.agreement.ok"] == False]  # noqa: E712 - NaN (not measured) is not False
    out = []
    for _, r in bad.iterrows():
        ratios = {k[len("flops.agreement.disagreeing."):]: v for k, v in r.items()
                  if k.startswith("flops.agreement.disagreeing.") and v is not None and v == v}
        out.append(f"- `{r['case_id']}`: {ratios or 'see the record'}")
    return ["", "## FLOP counters that disagree with the analytic count", "", *out] if out else []


def _failures(frame: pd.DataFrame) -> list[str]:
    if "error.message" not in frame:
        return []
    failed = frame[frame["status"] != "ok"]
    return [f"- `{r['case_id']}`: {str(r['error.message']).splitlines()[0]}" for _, r in failed.iterrows()]


def _run_lines(frame: pd.DataFrame) -> list[str]:
    """One line per run: where and with what the numbers were measured."""
    if "run_id" not in frame or not len(frame):
        return []
    out = []
    for (suite, run_id), rows in frame.groupby(["suite", "run_id"], sort=True):
        r = rows.iloc[0]
        sha = str(r.get("git.sha") or "?")[:10] + (" (dirty)" if r.get("git.dirty") else "")
        out.append(f"- run `{suite}/{run_id}`: git {sha}; {r.get('host.cpu_model')} x{r.get('host.cpu_count')}; "
                   f"torch {r.get('versions.torch')}, jax {r.get('versions.jax')}, flax {r.get('versions.flax')}")
    return out + [""]


def render_markdown(frame: pd.DataFrame) -> str:
    headers = [c[0] for c in COLUMNS]
    lines = ["# diffbench report", ""]
    lines += _run_lines(frame)
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(frame)]
    lines += _disagreements(frame)
    failures = _failures(frame)
    if failures:
        lines += ["", "## Failed cases", "", *failures]
    lines += ["", "GFLOPs = 2 x multiply-accumulates (matmuls, convolutions, attention QK^T and AV) "
              "per forward pass at the case's batch; times are medians per step in milliseconds."]
    return "\n".join(lines) + "\n"
