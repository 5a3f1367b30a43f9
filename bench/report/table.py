"""The report's table, rebuilt from records alone (never re-runs): cells, notes, and the
Markdown, CSV and LaTeX (booktabs) renderings. Docs: docs/reports.md."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pandas as pd

from bench import safe_text
from bench.report.columns import MFU_FLAGGED, Column, TIMED_STEPS, dig, mfu, timing

UNRELIABLE_MARK = "†"  # timing stopped by the repetition or time cap, not by the convergence rule
CONTENDED_MARK = "‡"  # timing taken while the CPU was shared (bench/measure/case_measurements.py: cpu_record)
FAILED_MARK = "✗"  # a sub-measurement of an ok case failed (FLOP counter, training-step count, MFU peak)
# the notes' intros, written once for report.md and report.html
CONTENDED_NOTE = ("Wall time well above the CPU time the case's threads used, or more runnable work than CPUs: "
                  "other processes took CPU time from the step, which then reads slower than on a quiet machine.")
UNRELIABLE_NOTE = ("Stopped by the repetition or time cap with IQR/median above the target: the median is "
                   "reported but the machine was too noisy for it to settle.")


@dataclass(frozen=True)
class Table:
    records: list[dict]
    columns: list[Column]
    group_by: tuple[Column, ...] = ()
    constants: tuple[Column, ...] = ()  # columns every case shares, said once under the title

    def groups(self) -> list[tuple[str, list[dict]]]:
        """(title, records) per distinct value of the group-by columns, in first-seen order."""
        if not self.group_by:
            return [("", self.records)]
        out: dict[tuple, list[dict]] = {}
        for r in self.records:
            out.setdefault(tuple(_plain(c.get(r)) for c in self.group_by), []).append(r)
        return [(", ".join(f"{c.header} = {v}" for c, v in zip(self.group_by, key)), rs) for key, rs in out.items()]


def _plain(value):
    return "-" if value is None else value


def significant(value: float, digits: int) -> str:
    """`digits` significant digits, without scientific notation between 1e-4 and 1e9."""
    if value == 0 or not math.isfinite(value) or not 1e-4 <= abs(value) < 1e9:
        return f"{value:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}".replace(",", "")


def _number(col: Column, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if col.fmt.startswith("sig") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return significant(float(value), int(col.fmt[3:]))
    try:
        return col.fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def marks(col: Column, record: dict) -> str:
    """The cell's marks: † did not converge, ‡ CPU shared, ✗ a sub-measurement failed."""
    value, out = col.get(record), ""
    if value is not None and col.unreliable and col.unreliable(record):
        out += UNRELIABLE_MARK
    if value is not None and col.contended and col.contended(record):
        out += CONTENDED_MARK
    if col.why and record.get("status") == "ok" and col.why(record):
        out += FAILED_MARK
    return out


def cell(col: Column, record: dict) -> str:
    """value [lo, hi] with its marks, as the Markdown, HTML and LaTeX tables show it."""
    value = col.get(record)
    text = _number(col, value)
    ci = col.ci(record) if col.ci and value is not None else None
    if ci:
        text += f" [{_number(col, ci[0])}, {_number(col, ci[1])}]"
    mark = marks(col, record)
    if mark:
        text = mark if text == "-" else f"{text} {mark}"
    return text


def rows(table: Table, records=None) -> list[list[str]]:
    return [[cell(c, r) for c in table.columns] for r in (table.records if records is None else records)]


def values(records, columns: list[Column]) -> pd.DataFrame:
    """Raw values, one column per Column (named by its name) plus `<name>_lo`, `<name>_hi` for
    the CIs and `<name>_converged` for timings; for CSV and the plots."""
    data = []
    for r in records:
        row = {}
        for c in columns:
            row[c.name] = c.get(r)
            if c.ci:
                lo_hi = c.ci(r) if row[c.name] is not None else None
                row[f"{c.name}_lo"], row[f"{c.name}_hi"] = lo_hi or (None, None)
            if c.unreliable:
                row[f"{c.name}_converged"] = None if row[c.name] is None else not c.unreliable(r)
        data.append(row)
    return pd.DataFrame(data, columns=list(data[0]) if data else [c.name for c in columns])


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    # a bare CR is not quoted by the csv module (its line terminator is "\n") but ends a row for
    # every reader: written as the two characters \r, like the sanitiser's other escapes
    values(table.records, table.columns).replace("\r", r"\\r", regex=True).to_csv(buf, index=False)
    return buf.getvalue()


# -- notes under the table ----------------------------------------------------------------

def unreliable_timings(records) -> list[dict]:
    """One entry per timed step that stopped at a cap: case, step, reps, IQR/median, stop reason."""
    out = []
    for r in records:
        for step in TIMED_STEPS:
            t = timing(r, step)
            if t is not None and t.get("stop_reason") != "converged":
                out.append({"case": r.get("case_id"), "step": step, "reps": t.get("reps"), "rel_iqr": t.get("rel_iqr"),
                            "stop_reason": t.get("stop_reason"), "median_ms": t.get("median_ms"),
                            "iqr_ms": t.get("iqr_ms"), "target": dig(t, "policy", "target_rel_iqr")})
    return out


def failures(records) -> list[dict]:
    return [{"case": r.get("case_id"), "type": dig(r, "error", "type") or "?",
             "message": str(dig(r, "error", "message") or "no error message recorded").splitlines()[0]}
            for r in records if r.get("status") != "ok"]


def sub_failures(records, columns) -> list[dict]:
    """Measurements that failed inside ok cases, for the table's ✗ cells: case, column, reason."""
    return [{"case": r.get("case_id"), "column": c.header, "why": str(c.why(r)).splitlines()[0]}
            for r in records if r.get("status") == "ok" for c in columns if c.why and c.why(r)]


def contended_timings(records) -> list[dict]:
    """Timed steps taken while the CPU was shared: case, step, wall/CPU, load, reason."""
    return [{"case": r.get("case_id"), "step": s, "wall_over_cpu": dig(r, "timing", s, "wall_over_cpu"),
             "why": dig(r, "timing", s, "contention") or "wall time above CPU time"}
            for r in records for s in TIMED_STEPS if dig(r, "timing", s, "contended")]


def contended_line(c: dict) -> str:
    ratio = c["wall_over_cpu"]
    why = c["why"] if isinstance(c["why"], str) else str(c["why"])
    return f"{c['case']} {c['step']}: {why}" + (f" (wall/CPU {_ratio(ratio)})" if ratio and "wall/CPU" not in why else "")


def _ratio(value) -> str:
    """A ratio to 2 decimals; a value no float holds (a hostile record's huge int) as it is."""
    try:
        return f"{float(value):.2f}"
    except (OverflowError, TypeError, ValueError):
        return str(value)


def disagreements(records) -> list[dict]:
    """Traced FLOP counters off the analytic count by more than the tolerance."""
    return [{"case": r.get("case_id"), "ratios": dig(r, "flops", "agreement", "disagreeing") or {}}
            for r in records if dig(r, "flops", "agreement", "ok") is False]


def flagged_mfu(records) -> list[dict]:
    """Timed steps whose MFU came out above 1 (not reported): case, step, why."""
    return [{"case": r.get("case_id"), "step": step,
             "why": dig(timing(r, step), "utilization", "mfu_why_null") or "MFU above 1 (older record)"}
            for r in records for step in TIMED_STEPS if mfu(r, step) == MFU_FLAGGED]


def unreliable_line(u: dict) -> str:
    rel = "?" if u["rel_iqr"] is None else f"{u['rel_iqr']:.2f}"
    target = "" if u["target"] is None else f" (target {u['target']:g})"
    sig = lambda v, d: "?" if v is None else significant(v, d)  # a record may lack the spread (older, edited)
    return (f"{u['case']} {u['step']}: median {sig(u['median_ms'], 4)} ms, IQR {sig(u['iqr_ms'], 3)} ms, "
            f"IQR/median {rel}{target}; stopped by {u['stop_reason']} after {u['reps']} reps")


# -- Markdown -----------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(table: Table) -> list[str]:
    headers = [c.header for c in table.columns]
    out = []
    for title, records in table.groups():
        if title:
            out += [f"### {title}", ""]
        out += ["| " + " | ".join(map(_md_escape, headers)) + " |", "|" + "---|" * len(headers)]
        out += ["| " + " | ".join(_md_escape(x) for x in row) + " |" for row in rows(table, records)]
        out.append("")
    return out


def _md_section(title: str, items: list[str], intro: str = "") -> list[str]:
    """A "## title" section of bullet lines (with an intro paragraph), or nothing without items."""
    return ["", f"## {title}", "", *([intro, ""] if intro else []), *items] if items else []


def markdown_notes(records, columns=()) -> list[str]:
    return [
        *_md_section(f"Measurements that failed inside successful cases ({FAILED_MARK})",
                     [f"- `{f['case']}` {f['column']}: {f['why']}" for f in sub_failures(records, columns)]),
        *_md_section(f"Timings taken while the CPU was shared ({CONTENDED_MARK})",
                     [f"- `{contended_line(c)}`" for c in contended_timings(records)], CONTENDED_NOTE),
        *_md_section(f"Timings that did not converge ({UNRELIABLE_MARK})",
                     [f"- `{u['case']}` {unreliable_line(u)[len(str(u['case'])) + 1:]}"
                      for u in unreliable_timings(records)], UNRELIABLE_NOTE),
        *_md_section(f"MFU not reported: {MFU_FLAGGED}",
                     [f"- `{f['case']}` {f['step']}: {f['why']}" for f in flagged_mfu(records)]),
        *_md_section("FLOP counters that disagree with the analytic count",
                     [f"- `{d['case']}`: {d['ratios'] or 'see the record'}" for d in disagreements(records)]),
        *_md_section("Failed cases", [f"- `{f['case']}` ({f['type']}): {f['message']}" for f in failures(records)]),
    ]


# -- LaTeX (booktabs) ---------------------------------------------------------------------

def latex_escape(text: str) -> str:
    return safe_text.latex(text)


def to_latex(table: Table, caption: str = "") -> str:
    """A booktabs tabular: labels left-aligned, numbers right-aligned."""
    spec = "".join("l" if c.kind == "label" else "r" for c in table.columns)
    lines = [r"% needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c.header) for c in table.columns) + r" \\", r"\midrule"]
    for i, (title, records) in enumerate(table.groups()):
        if title:
            if i:
                lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{len(table.columns)}}}{{l}}{{\emph{{{latex_escape(title)}}}}} \\")
        lines += [" & ".join(latex_escape(x) for x in row) + r" \\" for row in rows(table, records)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
