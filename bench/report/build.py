"""`diffbench report`: records -> report.md, report.html, table.csv, table.tex and plots in one
folder. Derived from the records alone; nothing is re-run. Docs: docs/reports.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import results, safe_text
from bench.report import baseline as baseline_mod
from bench.report import columns as cols
from bench.records import write_text
from bench.report import plots, selection, table
from bench.report.stage_table import STAGES_NOTE, stage_table
from bench.report.prose import LEGEND, QUALITY_LEGEND, RATIOS_NOTE, constants_text, provenance, provenance_line

FORMATS = ("md", "html", "csv", "latex")
FILES = {"md": "report.md", "html": "report.html", "csv": "table.csv", "latex": "table.tex"}
SUFFIX_FORMAT = {".md": "md", ".html": "html", ".htm": "html", ".csv": "csv", ".tex": "latex"}


class ReportError(ValueError):
    """Bad report options (format, column, group-by, baseline, output); the message names the allowed values."""


@dataclass
class Report:
    records: list[dict]
    main: table.Table
    ratios: table.Table | None = None
    quality: table.Table | None = None  # one row per case with quality: what produced each score, CI, verdict
    everything: table.Table | None = None  # every column with data (table.csv without --columns)
    stages: table.Table | None = None  # one row per stage of the cases trained in stages (stage_table.py)
    baseline: str | None = None
    plots: list[dict] = field(default_factory=list)
    exponents: dict = field(default_factory=dict)

    @property
    def suites(self) -> list[str]:
        return list(dict.fromkeys(str(r.get("suite")) for r in self.records))


def parse_formats(text: str | None) -> tuple[str, ...]:
    if not text:
        return FORMATS
    chosen = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ReportError(f"--format {text!r}: unknown format(s) {', '.join(bad) or '(none)'}; allowed: {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(chosen))


def _names(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [n.strip() for n in text.split(",") if n.strip()] or None


def assemble(paths, columns: str | None = None, group_by: str | None = None, baseline: str | None = None) -> Report:
    records = results.load_records(paths)
    if not records:
        raise ReportError(f"no records under {', '.join(map(str, paths))} (no record files beside a run.json); "
                          "allowed: run directories made by `diffbench run`, their suite folders or results/")
    try:
        main_cols = selection.select(records, _names(columns))
    except ValueError as exc:
        raise ReportError(f"--columns: {exc}") from None
    same = () if _names(columns) else tuple(selection.default_columns(records)[1])
    try:
        groups = selection.select(records, _names(group_by)) if group_by else []
    except ValueError as exc:
        raise ReportError(f"--group-by: {exc}") from None
    if groups:  # grouped columns head the table, rows sorted by them (stable)
        main_cols = groups + [c for c in main_cols if c.name not in {g.name for g in groups}]
        records = sorted(records, key=lambda r: tuple(str(g.get(r)) for g in groups))
    same = tuple(c for c in same if c.name not in {g.name for g in groups})
    report = Report(records, table.Table(records, main_cols, tuple(groups), same), exponents=plots.exponents(records))
    report.everything = report.main if _names(columns) else table.Table(records, selection.select(records, None, everything=True))
    q_records, q_cols, q_same = selection.quality_columns(records)
    if q_records:
        report.quality = table.Table(q_records, q_cols, (), tuple(q_same))
    report.stages = stage_table(records)
    if baseline:
        try:
            ratio_cols = baseline_mod.columns(records, baseline)
        except baseline_mod.BaselineError as exc:
            raise ReportError(str(exc)) from None
        labels = [c for c in main_cols if c.kind == "label" and c.name not in ("status", "flop_check", "threads")]
        report.ratios = table.Table(records, labels + cols.with_data(ratio_cols, records), tuple(groups))
        report.baseline = baseline
    return report


def markdown(report: Report, plot_dir: str = "") -> str:
    lines = [f"# diffbench report: {', '.join(report.suites)}", "", "## Provenance", ""]
    lines += ["- run `{}` {}".format(*provenance_line(p)) for p in provenance(report)]
    lines += ["", "## Results", ""]
    if report.main.constants:
        lines += [constants_text(report.main), ""]
    lines += [*table.markdown_table(report.main), LEGEND]
    if report.quality is not None:
        lines += ["", "## Quality: what produced each score", ""]
        if report.quality.constants:
            lines += [constants_text(report.quality), ""]
        lines += [*table.markdown_table(report.quality), QUALITY_LEGEND]
    if report.stages is not None:
        lines += ["", "## Training stages", "", *table.markdown_table(report.stages), STAGES_NOTE]
    lines += table.markdown_notes(report.records, selection.available(report.records))
    if report.ratios is not None:
        lines += ["", f"## Ratios against the baseline `{report.baseline}`", "", RATIOS_NOTE, "",
                  *table.markdown_table(report.ratios)]
    if report.exponents:
        lines += ["", "## Cost vs resolution: fitted exponents", "",
                  "b in cost ∝ resolution^b, least squares on log-log axes over the resolutions measured.", "",
                  "| quantity | series | exponent b |", "|---|---|---|"]
        lines += [f"| {panel} | {name} | {b:.2f} |" for panel, s in report.exponents.items() for name, b in s.items()]
    if report.plots:
        lines += ["", "## Plots", ""]
        for p in report.plots:
            lines += [f"![{p['caption']}]({plot_dir}{p['png'].name})", "", f"*{p['caption']}* "
                      f"([SVG]({plot_dir}{p['svg'].name}))", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(paths, out: Path, formats=FORMATS, columns=None, group_by=None, baseline=None) -> list[Path]:
    """Writes the report into `out` (a folder, or one file whose suffix names its format)."""
    out = Path(out)
    single = out.suffix.lower() in SUFFIX_FORMAT or (out.suffix and not out.is_dir())
    if single:
        fmt = SUFFIX_FORMAT.get(out.suffix.lower())
        if fmt is None:
            raise ReportError(f"--out {out}: unknown suffix {out.suffix!r}; allowed: a folder, or a file ending in "
                              f"{', '.join(SUFFIX_FORMAT)}")
        if tuple(formats) not in (FORMATS, (fmt,)):
            raise ReportError(f"--out {out}: a {out.suffix} file holds only the {fmt} format, not {','.join(formats)}; "
                              "allowed: --out FOLDER for several formats, or a matching --format")
        formats, out_dir = (fmt,), out.parent
    else:
        out_dir = out
    report = assemble(paths, columns, group_by, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "md" in formats or "html" in formats:
        report.plots = plots.write_all(report.records, out_dir)
    written = [p[k] for p in report.plots for k in ("png", "svg")]
    target = {f: (out if single else out_dir / FILES[f]) for f in formats}
    if "md" in formats:  # every file through bench.safe_text: no HTML, formulas or terminal escapes
        write_text(target["md"], safe_text.markdown(markdown(report)))
    if "html" in formats:
        from bench.report.html import render

        write_text(target["html"], safe_text.lines(render(report)))
    if "csv" in formats:
        write_text(target["csv"], safe_text.csv(table.to_csv(report.everything or report.main)))
    if "latex" in formats:
        caption = " ".join(x for x in (f"diffbench: {', '.join(report.suites)}.", constants_text(report.main), LEGEND) if x)
        write_text(target["latex"], safe_text.lines(table.to_latex(report.main, caption=caption)))
    return [target[f] for f in formats] + written
