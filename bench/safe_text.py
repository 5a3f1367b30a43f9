"""One sanitiser for every text diffbench prints or writes that came from outside: case ids,
error messages, file names, record fields. Each output format gets one function here, called at
the point where the text is printed or written:

- `printable`: one terminal-safe line (error messages, DataError / MetricError / CheckpointError).
- `lines`: multi-line text for a terminal or a file (`compare`'s output, every report file).
- `markdown`: a whole report.md: `lines`, and no raw HTML (every `<` written as `&lt;`).
- `csv`: a whole table.csv: `lines`, and no formulas (OWASP CSV injection rule).
- `latex`: one table.tex cell: every LaTeX special character escaped, ASCII plus accented letters.

Standard library only (`diffbench plan` imports it without numpy).
"""

from __future__ import annotations

import csv as _csv
import io
import re

# control characters (C0, DEL, C1), line and paragraph separators, zero-width and bidi controls,
# byte-order mark: a terminal would act on them, an editor or browser would reorder or hide text
_OTHER = r"\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_UNPRINTABLE = re.compile(f"[\\x00-\\x1f{_OTHER}]")
_UNSAFE_IN_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f{_OTHER}]")  # keeps \t and \n


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(text, limit: int = 2000) -> str:
    """One terminal-safe line: control, bidi and line-separator characters escaped (a key holding
    '\\r' or an ESC sequence must not rewrite the user's terminal), at most `limit` characters."""
    text = _UNPRINTABLE.sub(_escape, str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def lines(text) -> str:
    """`printable` for multi-line text: newlines and tabs kept, everything else escaped, no limit."""
    return _UNSAFE_IN_LINES.sub(_escape, str(text))


_REMOTE_LINK = re.compile(r"\]\((?=\s*([A-Za-z][A-Za-z0-9+.-]*:|//))")


def markdown(document: str) -> str:
    """A Markdown document whose generated parts hold no HTML: every `<` becomes `&lt;`, so no
    text from a record (a case id, an error message) can open a tag, a comment or an autolink;
    and no link or image to a URL (`[x](http://...)`, `![x](//host/pixel.png)`): the report's own
    links name files beside it. (Inside a code span a viewer shows `&lt;` literally; nothing is
    executed either way.)"""
    return _REMOTE_LINK.sub("]\\(", lines(document).replace("<", "&lt;"))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_cell(cell: str) -> str:
    """OWASP's rule against CSV injection: a cell a spreadsheet would run as a formula (starting
    with = + - @ tab or CR) gets a leading single quote. A plain number (-1.5, +3e-4) is a value,
    not a formula, and is left alone."""
    cell = lines(cell)
    if cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def csv(document: str) -> str:
    """A whole CSV document (as pandas writes it: comma, double quotes, '\\n') with every cell
    passed through `csv_cell`; cells that need nothing come back byte for byte."""
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\n")
    for row in _csv.reader(io.StringIO(document, newline="")):
        writer.writerow([csv_cell(c) for c in row])
    return out.getvalue()


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          # `[` opens an optional argument when it follows \midrule or \\ (booktabs reads the
          # cell as the rule's width, LaTeX as the row's extra space): braces end that reading
          "[": "{[}", "]": "{]}",
          "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
          "\u2020": r"$^\dagger$", "\u2021": r"$^\ddagger$", "\u2717": r"$^\times$",
          "\u2248": r"$\approx$", "\u00b7": r"$\cdot$"}
# accented Latin letters pdflatex's default UTF-8 input maps in the default (OT1) font encoding;
# any other non-ASCII character is written as its \\uXXXX escape rather than break the document
_LATIN = frozenset("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßàáâãäåæçèéêëìíîïñòóôõöøùúûüýÿ")


def latex(text) -> str:
    """One cell of a LaTeX table, safe in any position of a booktabs tabular."""
    out = []
    for ch in printable(text, limit=10**9):
        if ch in _LATEX:
            out.append(_LATEX[ch])
        elif " " <= ch <= "~" or ch in _LATIN:
            out.append(ch)
        else:
            out.append(_LATEX["\\"] + ch.encode("unicode_escape").decode("ascii")[1:])
    return "".join(out)
