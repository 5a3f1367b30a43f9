"""`diffbench compare RUN_A RUN_B`: did the step times change between two runs?

For every case in both runs and every timed step both recorded: the ratio of medians B/A with a
percentile-bootstrap 95% CI resampling both raw samples (bench.measure.stats), and a two-sided
Mann-Whitney U test (Mann & Whitney 1947) of the two raw samples. A change is flagged only when
it is both beyond the threshold (|ratio - 1| > threshold) and significant (p < alpha); a step
whose timing did not converge in either run is "unreliable" instead. Docs: docs/reports.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from bench import results
from bench.measure.stats import bootstrap_ratio_ci
from bench.report.columns import TIMED_STEPS, converged, dig, timing
from bench.report.table import significant

VERDICTS = ("regression", "improvement", "unchanged", "unreliable", "failed", "recovered")


class CompareError(ValueError):
    """Bad compare options; the message names the option and what is allowed."""


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 10:
        raise CompareError(f"--threshold {text!r}: bad threshold; allowed: a relative change like 5% or 0.05 (>= 0)")
    return value


def parse_alpha(value: float) -> float:
    if not 0 < value < 1:
        raise CompareError(f"--alpha {value!r}: bad significance level; allowed: a number in (0, 1), e.g. 0.01")
    return value


def decide(ratio, p, threshold: float, alpha: float):
    """Vectorized verdicts: 'regression' (slower), 'improvement' (faster) or 'unchanged'."""
    ratio, p = np.asarray(ratio, float), np.asarray(p, float)
    flagged = (np.abs(ratio - 1.0) > threshold) & (p < alpha)
    return np.where(flagged, np.where(ratio > 1.0, "regression", "improvement"), "unchanged")


def mann_whitney_p(a, b, axis: int = -1):
    """Two-sided Mann-Whitney U p-value(s); 2-D inputs test row by row."""
    return mannwhitneyu(np.asarray(b, float), np.asarray(a, float), alternative="two-sided", axis=axis).pvalue


def compare_samples(a, b, threshold: float, alpha: float, seed: int = 0) -> dict:
    """One step: A's and B's raw samples (ms) -> ratio B/A, its CI, p, verdict."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ratio = float(np.median(b) / np.median(a))
    lo, hi = bootstrap_ratio_ci(b, a, seed=seed)
    p = float(mann_whitney_p(a, b))
    return {"ratio": ratio, "ci95": [lo, hi], "p": p, "verdict": str(decide(ratio, p, threshold, alpha)),
            "n_a": int(a.size), "n_b": int(b.size)}


def _by_id(path) -> dict[str, dict]:
    """case_id -> record of one run (records of several runs would shadow each other)."""
    recs = results.load_records([path])
    runs = sorted({str(Path(r["record_path"]).parent) for r in recs})
    if len(runs) > 1:
        raise results.RecordError(f"{path}: holds {len(runs)} runs ({', '.join(runs[:3])}{', ...' if len(runs) > 3 else ''}); "
                                  "allowed: one run directory (or its run.json) per side of compare")
    return {r["case_id"]: r for r in recs}


def compare_runs(run_a, run_b, threshold: float = 0.05, alpha: float = 0.01) -> dict:
    a, b = _by_id(run_a), _by_id(run_b)
    rows, uncompared = [], []
    for case_id in [c for c in a if c in b]:
        ra, rb = a[case_id], b[case_id]
        if ra.get("status") != rb.get("status") and "ok" in (ra.get("status"), rb.get("status")):
            verdict = "failed" if rb.get("status") != "ok" else "recovered"
            rows.append({"case": case_id, "step": None, "verdict": verdict,
                         "error": str(dig(rb if verdict == "failed" else ra, "error", "message") or "")[:200]})
            continue
        n_rows = len(rows)
        for step in TIMED_STEPS:
            ta, tb = timing(ra, step), timing(rb, step)
            if not (ta and tb and ta.get("samples_ms") and tb.get("samples_ms")):
                continue
            row = {"case": case_id, "step": step, **compare_samples(ta["samples_ms"], tb["samples_ms"], threshold, alpha),
                   "median_a_ms": ta["median_ms"], "median_b_ms": tb["median_ms"],
                   "converged_a": converged(ta), "converged_b": converged(tb)}
            if not (row["converged_a"] and row["converged_b"]):
                row["flag_if_reliable"], row["verdict"] = row["verdict"], "unreliable"
            rows.append(row)
        if len(rows) == n_rows:
            uncompared.append(case_id)
    return {"run_a": str(run_a), "run_b": str(run_b), "threshold": threshold, "alpha": alpha, "rows": rows,
            "missing": sorted(c for c in a if c not in b), "new": sorted(c for c in b if c not in a),
            "uncompared": uncompared,
            "regressions": sum(r["verdict"] in ("regression", "failed") for r in rows)}


def format_text(result: dict) -> str:
    lines = [f"compare B={result['run_b']} against A={result['run_a']}: ratio = median B / median A "
             f"[95% bootstrap CI], Mann-Whitney U p; flagged when |ratio - 1| > {result['threshold']:.3g} "
             f"and p < {result['alpha']:g}"]
    width = max([len(r["case"]) for r in result["rows"]] + [4])
    for r in result["rows"]:
        if r["step"] is None:
            lines.append(f"  {r['case']:<{width}}  {'':11s}  {r['verdict'].upper()}  {r.get('error', '')}")
            continue
        note = ""
        if r["verdict"] == "unreliable":
            runs = [n for n, ok in (("A", r["converged_a"]), ("B", r["converged_b"])) if not ok]
            note = f"  (timing did not converge in {' and '.join(runs)}; would be: {r['flag_if_reliable']})"
        verdict = r["verdict"].upper() if r["verdict"] in ("regression", "improvement") else r["verdict"]
        lines.append(f"  {r['case']:<{width}}  {r['step']:11s}  {significant(r['median_a_ms'], 4):>9s} -> {significant(r['median_b_ms'], 4):>9s} ms"
                     f"  x{r['ratio']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]  p={r['p']:.2g}  {verdict}{note}")
    for key, what in (("missing", "in A only (missing from B)"), ("new", "in B only (new)"),
                      ("uncompared", "in both without a timed step in both (not compared)")):
        if result[key]:
            lines.append(f"cases {what}: " + ", ".join(result[key]))
    counts = {v: sum(r["verdict"] == v for r in result["rows"]) for v in VERDICTS}
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no case in common")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    return json.dumps(result, indent=1)
