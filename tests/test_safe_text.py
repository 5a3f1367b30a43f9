"""Outputs that cannot attack their reader: one sanitiser (bench/safe_text.py) for the terminal,
report.md (no raw HTML), table.csv (no formulas), table.tex (compiles, nothing read as an
argument) and every file diffbench writes. The LaTeX table is compiled with pdflatex (Debian's
texlive-latex-base + texlive-latex-recommended for booktabs; .ci/run installs them): without it
the test skips locally and fails under CI (CI=true)."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bench import safe_text
from bench.data import DataError
from bench.quality import weights
from bench.report import selection, table
from tests.report_records import lognormal_ms, record, write_run
from tests.test_hardening import run_cli

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3*cmd|' /C calc'!A0", "@SUM(A1)", "<script>alert(1)</script>",
           "<img src=x onerror=alert(1)>", "\x1b[2J\x1b]0;pwned\x07", "a\rb", "\u202egnp.exe", "[3pt]zqxw",
           "x_y & 50% $ # ~ ^ \\ { } |", "`tick` ![i](http://t/x.png)", "<!-- c -->"]
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


# -- the functions ---------------------------------------------------------------------------
def test_printable_and_lines_escape_what_a_terminal_acts_on():
    assert safe_text.printable("a\x1b[2J\nb\u202e") == "a\\x1b[2J\\nb\\u202e"
    assert safe_text.lines("a\x1b\nb\tc\r") == "a\\x1b\nb\tc\\r"


@pytest.mark.parametrize("cell,out", [("=1+2", "'=1+2"), ("+1", "+1"), ("-1.5", "-1.5"), ("-3e-4", "-3e-4"),
                                      ("-1+2", "'-1+2"), ("@x", "'@x"), ("\tx", "'\tx"), ("a=b", "a=b"),
                                      ("-", "'-"), ("", "")])
def test_csv_cell_follows_owasp_and_leaves_numbers_alone(cell, out):
    assert safe_text.csv_cell(cell) == out


@settings(max_examples=200)
@given(rows=st.lists(st.lists(st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE),
                                        st.floats(allow_nan=False).map(repr)), min_size=1, max_size=4),
                     min_size=1, max_size=4))
def test_property_no_csv_cell_is_a_formula(rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    cells = [c for row in csv.reader(io.StringIO(safe_text.csv(buf.getvalue()), newline="")) for c in row]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or re.fullmatch(r"[+-][0-9.eE+-]+", cell), cell
        assert not UNSAFE.search(cell), cell


TAGS = {"p", "ul", "ol", "li", "code", "pre", "em", "strong", "a", "img", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "hr", "br"}


def _tags(html: str) -> list[tuple[str, str]]:
    return [(name.lower(), attrs) for name, attrs in re.findall(r"</?\s*([A-Za-z][A-Za-z0-9]*)([^>]*)>", html)]


@settings(max_examples=200)
@given(text=st.one_of(st.text(), st.sampled_from(HOSTILE)))
def test_property_markdown_never_holds_raw_html_or_remote_links(text):
    document = f"# t\n\n| a |\n|---|\n| {text} |\n\n- `{text}` {text}\n\n![plot](p.png)\n"
    html = MarkdownIt("commonmark").render(safe_text.markdown(document))
    for name, attrs in _tags(html):
        assert name in TAGS, html
        assert not re.search(r"\son[a-z]+\s*=", attrs), html
        assert not re.search(r"(src|href)=\"(?!p\.png\")", attrs), html  # only the document's own image


# -- through `diffbench report` and `compare` -------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    runs = []
    for run_id in ("a", "b"):
        recs = []
        for i, text in enumerate(HOSTILE):
            rec = record(run_id, i, "unet2d", text, sample_ms=lognormal_ms(rng, 10.0), status="ok" if i % 3 else "failed")
            rec["case_id"] = f"{text}/{i}"
            if rec["status"] != "ok":
                rec["error"] = {"type": text, "message": f"{text} in {root / text}"}
            recs.append(rec)
        runs.append(write_run(root, "s", run_id, recs))
    return root, runs


def test_report_files_hold_no_formula_html_or_terminal_escape(hostile_runs, capsys):
    root, (run, _) = hostile_runs
    out = root / "report"
    code, err = run_cli(["report", str(run), "--out", str(out)], capsys)
    assert code == 0, err
    for name in ("report.md", "report.html", "table.csv", "table.tex"):
        text = (out / name).read_text(encoding="utf-8")
        assert not UNSAFE.search(text), (name, UNSAFE.search(text))
    rows = list(csv.reader(io.StringIO((out / "table.csv").read_text(encoding="utf-8"), newline="")))
    presets = [row[rows[0].index("preset")] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in presets and "'@SUM(A1)" in presets and "'-2+3*cmd|' /C calc'!A0" in presets
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "@")) and not re.match(r"[+-][^0-9.]", cell), cell
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "<script" not in markdown and "<img" not in markdown and "<!--" not in markdown
    html = MarkdownIt("commonmark").render(markdown)
    assert all(name in TAGS | {"table", "thead", "tbody", "tr", "th", "td"} for name, _ in _tags(html))
    assert not [attrs for name, attrs in _tags(html) if re.search(r"\son[a-z]+\s*=|http://t", attrs)]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text


def test_compare_prints_no_terminal_escape(hostile_runs, capsys):
    _, (a, b) = hostile_runs
    from bench import cli

    code = cli.main(["compare", str(a), str(b)])
    out = capsys.readouterr().out
    assert code in (0, 1) and "\\x1b[2J" in out and not UNSAFE.search(out)


def test_error_messages_escape_file_names(tmp_path):
    bad = tmp_path / "x\x1b[2J\u202e"
    bad.mkdir()
    with pytest.raises(DataError) as err:
        from bench.data import load_dataset

        load_dataset("imagefolder", root=bad)
    assert not UNSAFE.search(str(err.value)) and "\\x1b[2J\\u202e" in str(err.value)
    with pytest.raises(weights.MetricError) as err:
        weights.resolve(weights.INCEPTION, environ={"DIFFBENCH_INCEPTION": str(bad / "w\x1b.pt")})
    assert not UNSAFE.search(str(err.value)) and "w\\x1b.pt" in str(err.value)


# -- table.tex compiles -------------------------------------------------------------------------------
PDFLATEX = shutil.which("pdflatex")


@pytest.fixture(scope="module")
def tex():
    if PDFLATEX is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("pdflatex is not installed; CI must install texlive-latex-base texlive-latex-recommended "
                        "(.ci/run does)")
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended); "
                    "this test fails instead under CI=true")
    return PDFLATEX


def _compile(tex_path, table_tex: str) -> str:
    """pdflatex on a document holding the table; the text of the page (uncompressed PDF)."""
    (tex_path / "table.tex").write_text(table_tex, encoding="utf-8")
    (tex_path / "doc.tex").write_text("\\pdfcompresslevel=0 \\pdfobjcompresslevel=0\n\\documentclass{article}\n"
                                      "\\usepackage{booktabs}\n\\begin{document}\n\\input{table.tex}\n\\end{document}\n")
    run = subprocess.run([PDFLATEX, "-halt-on-error", "-interaction=nonstopmode", "-no-shell-escape", "doc.tex"],
                         cwd=tex_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    pdf = (tex_path / "doc.pdf").read_bytes().decode("latin-1")
    return "".join(re.findall(r"\(((?:\\.|[^\\)])*)\)", " ".join(re.findall(r"\[(.*?)\]\s*TJ", pdf))))


def _table(cells: list[str]) -> str:
    recs = [record("r", i, "unet2d", text, sample_ms=[1.0, 1.1, 0.9]) for i, text in enumerate(cells)]
    cols = [c for c in selection.select(recs, ["preset", "backend"])]
    return table.to_latex(table.Table(recs, cols), caption="diffbench: " + cells[0])


def test_table_tex_compiles_with_hostile_cells_and_keeps_a_leading_bracket(tex, tmp_path):
    text = _compile(tmp_path, _table(HOSTILE))
    assert "3pt" in text and "zqxw" in text  # not swallowed as \midrule's width or \\'s extra space


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
                      min_size=1, max_size=6))
def test_property_table_tex_compiles(tex, tmp_path, cells):
    _compile(tmp_path, _table(cells))
