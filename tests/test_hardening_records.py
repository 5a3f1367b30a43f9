"""Hostile and damaged records through `diffbench report` and `diffbench compare` (the style of
tests/test_hardening.py): a wrong type anywhere, a deleted field, non-finite numbers, JSON nested
thousands deep, two records of one case; never a traceback, a hang or a silent merge: exit 2
and one line naming the file (and the field), or a report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import records
from tests.test_hardening import assert_one_clean_line, run_cli

RUN = Path(__file__).resolve().parent / "data" / "schema2"  # a real run: torch (every measurement), jax, failed
DEEP = "__deep__"  # replaced by JSON nested that many levels


def _copy(tmp_path) -> Path:
    run = tmp_path / "s" / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(RUN, run)
    return run


def _set(data: dict, path: str, value, delete: bool = False) -> None:
    *parents, key = path.split(".")
    for p in parents:
        data = data[p]
    if delete:
        data.pop(key, None)
    else:
        data[key] = value


def _write(path: Path, data: dict, depth: int = 0) -> None:
    text = json.dumps(data)
    if depth:
        text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth, 1)
    path.write_text(text)


def _paths(value, prefix: str = "") -> list[str]:
    """Every key path of a record, containers included (`case`, `timing.sample_step`, ...)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            if "." not in k:
                out += _paths(v, f"{prefix}.{k}" if prefix else k)
    return out


def _report_and_compare(run: Path, tmp_path, capsys, *needles, refused: bool = True, formats="csv,latex") -> None:
    """Both commands on the damaged run: exit 2 with one clean line holding every needle (the
    file, the field), or (refused=False) a report / a comparison instead."""
    for argv in (["report", str(run), "--out", str(tmp_path / "out"), "--format", formats],
                 ["compare", str(RUN), str(run)]):
        code, err = run_cli(argv, capsys)
        assert "Traceback" not in err, err
        if code == 2 or refused:
            assert_one_clean_line(code, err, *needles)
        else:
            assert code in (0, 1) and not err.strip(), (code, err)


TORCH = records.record_paths(RUN)[0].name
BAD_RECORDS = {  # the list: (field, value) -> what the line says
    "integer case_id": ("case_id", 7, "case_id"),
    "list case_id": ("case_id", ["a", "b"], "case_id"),
    "string case.index": ("case.index", "3", "case.index"),
    "case as a string": ("case", "unet2d", "bad record field case:"),
    "string params": ("params", "191651", "params"),
    "string median_ms": ("timing.sample_step.median_ms", "6.7", "timing.sample_step.median_ms"),
    "string samples_ms": ("timing.sample_step.samples_ms", "1,2,3", "timing.sample_step.samples_ms"),
    "NaN in samples_ms": ("timing.train_step.samples_ms", [1.0, float("nan")], "timing.train_step.samples_ms"),
    "huge integer median": ("timing.sample_step.median_ms", 10**400, "timing.sample_step.median_ms"),
    "string quality value": ("quality.metrics", [{"metric": "kid", "value": "low"}], "quality.metrics[0].value"),
    "list as flops": ("flops", [1, 2], "bad record field flops:"),
    "nested 3000 deep": ("config", DEEP, "unreadable record"),
    "nested 200 deep": ("case.overrides", DEEP, "nested more than 64 levels"),
}


@pytest.mark.parametrize("name", sorted(BAD_RECORDS))
def test_bad_records_are_one_line_naming_file_and_field(name, tmp_path, capsys):
    field, value, needle = BAD_RECORDS[name]
    run = _copy(tmp_path)
    data = json.loads((run / TORCH).read_text())
    _set(data, field, value)
    _write(run / TORCH, data, depth=200 if "200" in name else 3000 if value == DEEP else 0)
    _report_and_compare(run, tmp_path, capsys, str(run / TORCH), needle)


@pytest.mark.parametrize("field,value,needle", [
    ("provenance", "x", "bad run file field provenance"),
    ("provenance.host", ["a"], "provenance.host"),
    ("schema", "2", "bad run file field schema"),
])
def test_a_bad_run_json_is_one_line(field, value, needle, tmp_path, capsys):
    run = _copy(tmp_path)
    data = json.loads((run / records.RUN_FILE).read_text())
    _set(data, field, value)
    _write(run / records.RUN_FILE, data)
    code, err = run_cli(["report", str(run), "--out", str(tmp_path / "out"), "--format", "md"], capsys)
    assert_one_clean_line(code, err, str(run / records.RUN_FILE), needle)


@pytest.mark.parametrize("changes", [
    {"config.image_size": False},  # a bool is not a resolution (it was 0: log(0) in the exponent fit)
    {"config.image_size": 32, "flops.gflop_per_image": -1.0},
    {"config.image_size": 32, "timing.sample_step.median_ms": 0.0},
    {"timing.sample_step.iqr_ms": None},  # the notes under the table formatted None as a number
], ids=["bool resolution", "negative gflop", "zero median", "no spread"])
def test_odd_values_of_the_right_type_still_render(changes, tmp_path, capsys):
    run = _copy(tmp_path)
    data = json.loads((run / TORCH).read_text())
    for field, value in changes.items():
        _set(data, field, value)
    _write(run / TORCH, data)
    _report_and_compare(run, tmp_path, capsys, refused=False, formats="md,csv,latex")


def test_two_records_of_one_case_are_refused_not_merged(tmp_path, capsys):
    run = _copy(tmp_path)
    twin = run / records.record_filename(9, json.loads((run / TORCH).read_text())["case_id"])
    shutil.copy(run / TORCH, twin)
    _report_and_compare(run, tmp_path, capsys, str(run / TORCH), str(twin), "two records of case")


FIELDS = sorted({p for f in records.record_paths(RUN) for p in _paths(json.loads(f.read_text()))})
RUN_FIELDS = sorted(_paths(json.loads((RUN / records.RUN_FILE).read_text())))
hostile = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([10**400, -1, 0, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
    st.just(DEEP),
)


def _hostile_run(which, field, value, delete, depth, tmp_path) -> tuple[Path, Path]:
    """The fixture run with one field of one record (which 0-2) or of run.json (3) replaced by a
    hostile value or deleted."""
    run = _copy(tmp_path)
    target = run / records.RUN_FILE if which == 3 else records.record_paths(run)[which]
    data = json.loads(target.read_text())
    path = field.draw(st.sampled_from([p for p in (RUN_FIELDS if which == 3 else FIELDS) if _has(data, p)]),
                      label="field")
    _set(data, path, value, delete)
    _write(target, data, depth if value == DEEP and not delete else 0)
    return run, target


CASES = dict(which=st.integers(0, 3), field=st.data(), value=hostile, delete=st.booleans(),
             depth=st.sampled_from([70, 2000, 100_000]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CASES)
def test_property_hostile_records_never_crash_report_or_compare(which, field, value, delete, depth, tmp_path, capsys):
    """Report (tables) and compare answer a hostile field with a report or exit 2 and one clean
    line naming that file."""
    run, target = _hostile_run(which, field, value, delete, depth, tmp_path)
    _report_and_compare(run, tmp_path, capsys, str(target), refused=False)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CASES)
def test_property_hostile_records_never_crash_the_markdown_and_html_report(which, field, value, delete, depth,
                                                                           tmp_path, capsys):
    """The same through report.md and report.html (provenance, notes, plots): fewer examples, the
    plots take seconds."""
    run, target = _hostile_run(which, field, value, delete, depth, tmp_path)
    _report_and_compare(run, tmp_path, capsys, str(target), refused=False, formats="md,html")


def _has(data, path: str) -> bool:
    for p in path.split("."):
        if not isinstance(data, dict) or p not in data:
            return False
        data = data[p]
    return True
