"""`diffbench compare RUN_A RUN_B`: did the step times change between two runs?

The noise that matters sits between processes, so the unit of comparison is the round (one fresh
process, bench/rounds.py): for every case in both runs and every timed step both recorded, the
per-round medians of A and of B. The ratio is median(B's round medians) / median(A's), with a
percentile-bootstrap 95% CI resampling the rounds of each run; p is the two-sided Mann-Whitney U
test (Mann & Whitney 1947) of the two sets of round medians. A change is flagged only when it is
both beyond the threshold (|ratio - 1| > threshold) and significant (p < alpha). With few rounds
the test cannot reach alpha at all (R rounds against R: smallest p = 2 / C(2R, R)); such a step is
"inconclusive", and the row says why. A record written before rounds existed counts as one
round. With `control` (a case whose code did not change), every round median is first divided by
the control's of the same round and step, which removes the machine's drift between the two runs
(bench/compare_control.py). Docs: docs/reports.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from bench import compare_control, results
from bench.measure.stats import bootstrap_ratio_ci
from bench.report.columns import TIMED_STEPS, converged, dig, timing
from bench.report.table import significant

VERDICTS = ("regression", "improvement", "unchanged", "inconclusive", "uncompared", "failed", "recovered")


class CompareError(ValueError):
    """Bad compare options; the message names the option and what is allowed."""


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05; a bare number above 1 ('5') is refused: it would mean 500%."""
    raw = str(text).strip()
    allowed = "allowed: a relative change like 5% or 0.05 (a bare number is a fraction in [0, 1])"
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise CompareError(f"--threshold {text!r}: bad threshold; {allowed}")
    if not raw.endswith("%") and value > 1:
        raise CompareError(f"--threshold {text!r}: a bare number is a fraction ({raw} would mean {value * 100:g}%); "
                           f"write {raw}% for {raw} percent; {allowed}")
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


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided Mann-Whitney p of n_a against n_b values (complete separation)."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def rounds_needed(alpha: float) -> int:
    """The fewest rounds R such that R rounds against R can reach p < alpha."""
    r = 1
    while smallest_p(r, r) >= alpha:
        r += 1
    return r


METRICS = {"wall": "median_ms", "cpu": "cpu_median_ms"}  # --metric -> the per-round statistic compared


def round_medians(t: dict, metric: str = "wall") -> tuple[list[float] | None, bool]:
    """A timed step's per-round medians (ms) of the metric, and whether the record has rounds: a
    record written before rounds existed gives its one process's median, one round. None when the
    record lacks the metric (CPU time before it was recorded)."""
    key = METRICS[metric]
    rounds = t.get("rounds")
    if isinstance(rounds, list) and rounds and all(isinstance(r, dict) for r in rounds):
        values = [r.get(key) for r in rounds]
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        return ([float(v) for v in values] if ok else None), True
    value = t.get(key)
    return ([float(value)] if isinstance(value, (int, float)) else None), False


def compare_rounds(a, b, threshold: float, alpha: float, seed: int = 0) -> dict:
    """One step: A's and B's per-round medians (ms) -> ratio B/A, its CI over rounds, p, verdict;
    'inconclusive' (with `why`) when so few rounds cannot reach p < alpha."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ratio = float(np.median(b) / np.median(a))
    ci = list(bootstrap_ratio_ci(b, a, seed=seed)) if min(a.size, b.size) >= 2 else None
    p = float(mann_whitney_p(a, b))
    out = {"ratio": ratio, "ci95": ci, "p": p, "verdict": str(decide(ratio, p, threshold, alpha)),
           "rounds_a": int(a.size), "rounds_b": int(b.size)}
    floor = smallest_p(a.size, b.size)
    if floor >= alpha:
        out["verdict"] = "inconclusive"
        out["why"] = (f"{a.size} round(s) in A and {b.size} in B: the Mann-Whitney test over rounds cannot reach "
                      f"p < {alpha:g} (smallest possible p = {floor:.2g}); run both with rounds: "
                      f"{rounds_needed(alpha)} or more")
    return out


def compare_steps(ta: dict, tb: dict, threshold: float, alpha: float, metric: str = "wall",
                  control: tuple | None = None) -> dict | None:
    """Two records' entries of one timed step -> a compare row (without the case and step names),
    or None when either lacks the metric. With `control` (the control case's entries of this step
    in A and B): round medians divided by the control's of the same round, or a row with `why`
    when they cannot be."""
    ma, rounds_a = round_medians(ta, metric)
    mb, rounds_b = round_medians(tb, metric)
    if ma is None or mb is None:
        return None
    tested_a, tested_b = ma, mb
    if control is not None:
        (tested_a, why_a), (tested_b, why_b) = (compare_control.normalized(t, c, METRICS[metric])
                                                for t, c in zip((ta, tb), control))
        if tested_a is None or tested_b is None:
            return {"verdict": "uncompared", "why": f"not divided by the control: {why_a or why_b}"}
    row = {**compare_rounds(tested_a, tested_b, threshold, alpha), "median_a_ms": float(np.median(ma)),
           "median_b_ms": float(np.median(mb)), "medians_a_ms": ma, "medians_b_ms": mb,
           "converged_a": converged(ta), "converged_b": converged(tb)}
    old = [name for name, has in (("A", rounds_a), ("B", rounds_b)) if not has]
    if old:
        row["note"] = f"{' and '.join(old)}: records without rounds (written before rounds existed) count as one round"
    return row


def _by_id(path) -> dict[str, dict]:
    """case_id -> record of one run (records of several runs would shadow each other)."""
    recs = results.load_records([path])
    runs = sorted({str(Path(r["record_path"]).parent) for r in recs})
    if len(runs) > 1:
        raise results.RecordError(f"{path}: holds {len(runs)} runs ({', '.join(runs[:3])}{', ...' if len(runs) > 3 else ''}); "
                                  "allowed: one run directory (or its run.json) per side of compare")
    return {r["case_id"]: r for r in recs}


def compare_runs(run_a, run_b, threshold: float = 0.05, alpha: float = 0.01, metric: str = "wall",
                 control: str | None = None) -> dict:
    a, b = _by_id(run_a), _by_id(run_b)
    rows, uncompared, drift = [], [], None
    if control is not None:
        try:
            control = compare_control.find_control(list(a), list(b), control)
        except ValueError as exc:
            raise CompareError(str(exc)) from None
        drift = _drift(a[control], b[control], metric, threshold, alpha)
    for case_id in [c for c in a if c in b and c != control]:
        ra, rb = a[case_id], b[case_id]
        if ra.get("status") != rb.get("status") and "ok" in (ra.get("status"), rb.get("status")):
            verdict = "failed" if rb.get("status") != "ok" else "recovered"
            rows.append({"case": case_id, "step": None, "verdict": verdict,
                         "error": str(dig(rb if verdict == "failed" else ra, "error", "message") or "")[:200]})
            continue
        n_rows = len(rows)
        for step in TIMED_STEPS:
            ta, tb = timing(ra, step), timing(rb, step)
            pair = None if control is None else (timing(a[control], step), timing(b[control], step))
            row = compare_steps(ta, tb, threshold, alpha, metric, pair) if ta and tb else None
            if row is not None:
                rows.append({"case": case_id, "step": step, **row})
        if len(rows) == n_rows:
            uncompared.append(case_id)
    return {"run_a": str(run_a), "run_b": str(run_b), "threshold": threshold, "alpha": alpha, "metric": metric,
            "control": control, "control_drift": drift, "rows": rows,
            "rounds_needed": rounds_needed(alpha),
            "missing": sorted(c for c in a if c not in b), "new": sorted(c for c in b if c not in a),
            "uncompared": uncompared,
            "regressions": sum(r["verdict"] in ("regression", "failed") for r in rows)}


def _drift(ra: dict, rb: dict, metric: str, threshold: float, alpha: float) -> dict:
    """The control case's own B/A per timed step (ratio, CI, p): what the machine did between the runs."""
    out = {}
    for step in TIMED_STEPS:
        ta, tb = timing(ra, step), timing(rb, step)
        row = compare_steps(ta, tb, threshold, alpha, metric) if ta and tb else None
        if row is not None:
            out[step] = {k: row[k] for k in ("ratio", "ci95", "p")}
    return out


def _control_lines(result: dict) -> list[str]:
    """How the machine's drift between the runs was handled: divided out by the control case (with
    the control's own B/A), or a warning that it is in every ratio."""
    if result.get("control") is None:
        return ["A and B ran at different times: a change of the machine between them moves every case alike and "
                "is not in these CIs (identical code read 0.87-1.23x between runs on an idle VM; docs/reports.md). "
                "--control CASE divides it out with a case whose code did not change."]
    drift = "; ".join(f"{step} x{d['ratio']:.3f}" + (f" [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]" if d["ci95"] else "")
                      for step, d in result["control_drift"].items()) or "no timed step"
    return [f"every ratio is of round medians divided by the control case {result['control']}'s of the same round "
            f"and step; the control's own B/A (the machine's drift, divided out): {drift}"]


def format_text(result: dict) -> str:
    what = "wall time" if result["metric"] == "wall" else "process CPU time"
    lines = [f"compare B={result['run_b']} against A={result['run_a']} ({what} per step): ratio = median of B's round medians / "
             f"median of A's [95% bootstrap CI over rounds], Mann-Whitney U p over round medians; flagged when "
             f"|ratio - 1| > {result['threshold']:.3g} and p < {result['alpha']:g} (needs >= "
             f"{result['rounds_needed']} rounds in each run)"]
    lines += _control_lines(result)
    width = max([len(r["case"]) for r in result["rows"]] + [4])
    whys = []
    for r in result["rows"]:
        if r["step"] is None or r["verdict"] == "uncompared":
            lines.append(f"  {r['case']:<{width}}  {r['step'] or '':11s}  {r['verdict'].upper() if r['step'] is None else r['verdict']}"
                         f"  {r.get('error') or r.get('why', '')}")
            continue
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r["ci95"] else "[no CI: 1 round]"
        verdict = r["verdict"].upper() if r["verdict"] in ("regression", "improvement") else r["verdict"]
        lines.append(f"  {r['case']:<{width}}  {r['step']:11s}  {significant(r['median_a_ms'], 4):>9s} -> "
                     f"{significant(r['median_b_ms'], 4):>9s} ms  x{r['ratio']:.3f} {ci}  p={r['p']:.2g}  "
                     f"rounds {r['rounds_a']}/{r['rounds_b']}  {verdict}")
        for text in (r.get("note"), r.get("why") and f"inconclusive: {r['why']}"):
            if text and text not in whys:
                whys.append(text)
    lines += whys
    for key, what in (("missing", "in A only (missing from B)"), ("new", "in B only (new)"),
                      ("uncompared", "in both without a timed step in both (not compared)")):
        if result[key]:
            lines.append(f"cases {what}: " + ", ".join(result[key]))
    counts = {v: sum(r["verdict"] == v for r in result["rows"]) for v in VERDICTS}
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no case in common")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    return json.dumps(result, indent=1)
