"""The columns a set of records could fill (`available`), picked by name (`select`, `--columns`),
and which of them a report shows by default: the efficiency table (the standard set, the quality
values, and the label columns that differ between cases; constant ones said once under the
title) and the quality table (what produced each score, its CI, floor and verdict against the
best comparable score). `--columns` overrides the efficiency table's choice. Docs: docs/reports.md.
"""

from __future__ import annotations

from bench.report.columns import ALIASES, DEFAULT_HIDDEN, STATIC, Column, dig, override_columns, with_data
from bench.report.quality_columns import metric_columns, provenance_columns

# the efficiency table's standard set (besides the label columns that vary and the quality values)
STANDARD = ("arch", "preset", "resolution", "params", "gflop_image", "nfe_sample", "gflop_sample", "ms_per_sample",
            "train_img_s")
NOT_IN_MAIN = ("sampler", "contended")  # NFE/sample says it, the quality table names the sampler; ‡ marks contention
MEASURED_LABELS = ("flop_check",)  # None there means "not measured": a constant among the cases that measured it
PROVENANCE = ("weights", "train_steps", "train_gflop", "train_s", "sampler", "nfe_sample", "gflop_sample",
              "quality_n")


def _varying(records) -> list[Column]:
    """Case settings shown only when some case departs from the default (torch.compile, seed)."""
    out = []
    if any(dig(r, "case", "compile") for r in records):
        out.append(Column("compile", "compiled", lambda r: dig(r, "case", "compile"), kind="label"))
    if any(dig(r, "case", "seed") for r in records):
        out.append(Column("seed", "seed", lambda r: dig(r, "case", "seed"), kind="label"))
    return out


def available(records) -> list[Column]:
    """Every column these records could fill, in display order (labels, overrides, measures,
    training and sampling provenance, quality, status)."""
    static = STATIC[:-1]
    labels = [c for c in static if c.kind == "label" and c.name not in ("flop_check", "threads")]
    rest = [c for c in static if c not in labels]
    return (labels + _varying(records) + override_columns(records) + rest + provenance_columns()
            + metric_columns(records) + [STATIC[-1]])


def constant(column: Column, records) -> bool:
    """One value (not None) in every successful record (failed ones have no measurements), and
    more than one record."""
    ok = [r for r in records if r.get("status") == "ok"] or records
    if column.name in MEASURED_LABELS:
        ok = [r for r in ok if column.get(r) is not None] or ok
    values = {repr(column.get(r)) for r in ok} | {repr(v) for r in records if r not in ok
                                                  for v in [column.get(r)] if v is not None}
    return len(records) > 1 and len(values) == 1 and column.get(ok[0]) is not None


def _metric_value(c: Column) -> bool:
    return c.name.startswith("quality.") and c.name.count(".") == 1


def _split(keep: list[Column], records, movable) -> tuple[list[Column], list[Column]]:
    same = [c for c in keep if movable(c) and constant(c, records)]
    keep = [c for c in keep if c not in same]
    if not any(c.kind == "label" for c in keep):  # every label constant: the architecture names the rows
        arch = [c for c in same if c.name == "arch"]
        keep, same = arch + keep, [c for c in same if c not in arch]
    return keep, same


def default_columns(records, cols: list[Column] | None = None) -> tuple[list[Column], list[Column]]:
    """(the efficiency table's columns, the constant label columns said once under the title)."""
    cols = with_data([c for c in (cols or available(records)) if c.name not in DEFAULT_HIDDEN], records)
    labels = [c for c in cols if c.kind == "label" and not c.name.startswith("quality.") and c.name not in NOT_IN_MAIN]
    keep = [c for c in cols if c in labels or c.name in STANDARD or _metric_value(c)]
    return _split(keep, records, lambda c: c.kind == "label")


def quality_columns(records) -> tuple[list[dict], list[Column], list[Column]]:
    """(records with quality, the quality table's columns, its constant columns)."""
    recs = [r for r in records if isinstance(r.get("quality"), (dict, list)) and r.get("status") == "ok"]
    if not recs:
        return [], [], []
    cols = with_data(available(recs), recs)
    by = {c.name: c for c in cols}
    ident = [c for c in cols if c.kind == "label" and not c.name.startswith("quality.") and c.name not in PROVENANCE
             and c.name not in ("status", "flop_check", "contended", "threads", "case")]
    metrics = [c for c in cols if _metric_value(c)]
    per_metric = [by[n] for m in metrics for n in (m.name, f"{m.name}.vs_best", f"{m.name}.floor") if n in by]
    keep = ident + [by[n] for n in PROVENANCE if n in by] + per_metric
    keep, same = _split(keep, recs, lambda c: not _metric_value(c) and not c.name.endswith(".vs_best"))
    return recs, keep, same


def constants_line(columns: list[Column], records) -> str:
    """`device cpu · precision fp32 · ...`: the values every case shares."""
    from bench.report.table import cell

    ok = [r for r in records if r.get("status") == "ok"] or records

    def first(c):
        return next((r for r in ok if c.get(r) is not None), ok[0])
    return " · ".join(f"{c.header} {cell(c, first(c))}" for c in columns)


def select(records, names: list[str] | None, extra: list[Column] = (), everything: bool = False) -> list[Column]:
    """The requested columns (`extra` go before status); without names, every column with data
    (`everything`, for CSV) or the default table's (default_columns). Unknown names raise
    ValueError naming the allowed ones."""
    cols = available(records)
    cols = cols[:-1] + list(extra) + cols[-1:]
    if not names:
        return with_data(cols, records) if everything else default_columns(records, cols)[0]
    by_name = {c.name: c for c in cols}
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(by_name)}")
    return [by_name[n] for n in names]
