"""The record schema (docs/records.md, bench/record_schema.py): records written by schema 1 read
with schema-2 names, a newer schema is refused, every fixture field is documented, and the
readers (report, compare) refuse wrong types and duplicate cases with one line.

tests/data/schema1 is a run written by the code before schema 2 (a torch case with every
measurement, a jax case, a failed case); tests/data/schema2 the same suite run by schema-2 code.
Both: raw sample lists cut to 8 values, machine paths replaced (tests/data/README.md)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench import record_schema, records, results
from bench.cli import main

DATA = Path(__file__).resolve().parent / "data"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "records.md"
V1, V2 = DATA / "schema1", DATA / "schema2"


def flat(value, prefix: str = "", out: set | None = None) -> set[str]:
    """Dotted key paths of the leaves; a list of objects is `name[]`."""
    out = set() if out is None else out
    if isinstance(value, dict) and value:
        for k, v in value.items():
            flat(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for v in value:
            flat(v, prefix + "[]", out)
    else:
        out.add(prefix)
    return out


def _raw(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in records.record_paths(run)]


def _copy(tmp_path, src=V1) -> Path:
    run = tmp_path / "fixture" / src.name
    shutil.copytree(src, run)
    return run


def test_a_schema_1_run_reads_with_schema_2_names(tmp_path, capsys):
    raw = {r["case_id"]: r for r in _raw(V1)}
    assert {r["schema"] for r in raw.values()} == {1}
    recs = {r["case_id"]: r for r in results.load_records([V1])}
    assert {(r["schema"], r["schema_migrated_from"]) for r in recs.values()} == {(2, 1)}
    torch_id = next(c for c in raw if "/torch/" in c and raw[c]["status"] == "ok")
    old, new = raw[torch_id], recs[torch_id]
    assert new["flops"]["gflop"] == old["flops"]["gflops"] and new["flops"]["gmac"] == old["flops"]["gmacs"]
    assert new["flops"]["gflop_per_sample"] == old["flops"]["gflops_per_sample"]
    assert new["flops"]["train_step"]["gflop_per_image"] == old["flops"]["train_step"]["gflops_per_image"]
    assert new["flops"]["counters"]["fvcore"]["raw_mac"] == old["flops"]["counters"]["fvcore"]["raw_macs"]
    t_old, t_new = old["timing"]["sample_step"], new["timing"]["sample_step"]
    assert t_new["image_steps_per_s"] == t_old["images_per_s"] and "samples_per_s" not in t_new
    assert t_new["utilization"]["achieved_gflop_per_s"] == t_old["utilization"]["achieved_gflops_per_s"]
    assert t_new["utilization"]["peak_tflop_per_s"] == t_old["utilization"]["peak_tflops"]
    tr_old, tr_new = old["train"], new["train"]
    assert (tr_new["duration_s"], tr_new["compile_s"], tr_new["steps_per_s"]) == \
        (tr_old["seconds"], tr_old["compile_seconds"], tr_old["steps_per_second"])
    assert tr_new["step_gflop"] == tr_old["step_gflops"] and tr_new["step_flops"]["flop"] == tr_old["step_flops"]["flops"]
    assert tr_new["gflop_spent"] == tr_old["gflops_spent"] and tr_new["budget"] == tr_old["budget"]  # suite key kept
    assert new["quality"]["metrics"][0]["feature_s"] == old["quality"]["metrics"][0]["feature_seconds"]
    assert new["quality"]["scoring_s"] == old["quality"]["scoring_seconds"]
    assert new["quality"]["sampling"]["duration_s"] == old["quality"]["sampling"]["seconds"]
    assert new["worker_s"] == old["worker_seconds"]
    run_old = json.loads((V1 / records.RUN_FILE).read_text())
    peaks = new["_run"]["cpu_peaks"]["1"]["fp32"]
    assert peaks["gflop_per_s"] == run_old["cpu_peaks"]["1"]["fp32"]["gflops"] and "gflops" not in peaks
    # the report renders it: samples/s computed from the flops record where the record has none
    run = _copy(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "out.csv")]) == 0
    row = (tmp_path / "out.csv").read_text().splitlines()
    header = row[0].split(",")
    torch_row = next(r.split(",") for r in row[1:] if "torch" in r and "ok" in r)
    assert float(torch_row[header.index("gflop_image")]) == pytest.approx(old["flops"]["gflops_per_image"])
    # samples/s at the NFE the case's quality measurement sampled with (docs/reports.md), as ms/sample
    nfe = old["quality"]["sampling"]["nfe"]
    assert float(torch_row[header.index("samples_per_s")]) == pytest.approx(t_old["images_per_s"] / nfe)


def test_migration_leaves_no_schema_1_name(tmp_path):
    """Every field of a migrated schema-1 record is a field schema-2 code writes: no old name survives."""
    migrated = set().union(*(flat(record_schema.migrate(r)) for r in _raw(V1))) - {"schema_migrated_from"}
    written = set().union(*(flat(r) for r in _raw(V2)))
    assert migrated <= written, sorted(migrated - written)
    run_migrated = flat(record_schema.migrate(json.loads((V1 / records.RUN_FILE).read_text())))
    assert run_migrated - {"schema_migrated_from"} <= flat(json.loads((V2 / records.RUN_FILE).read_text()))
    assert {r["schema"] for r in _raw(V2)} == {records.SCHEMA}


def _documented() -> list[re.Pattern]:
    """Field names in the first column of docs/records.md's `| field |` tables, as patterns;
    `.name` continues the previous name's parent, `<...>` is one key, a trailing `.*` any keys."""
    patterns, in_table = [], False
    for line in DOCS.read_text().splitlines():
        if line.startswith("| field |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table or line.startswith("|---"):
            continue
        parent = ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            full = parent + name if name.startswith(".") else name
            parent = full.rsplit(".", 1)[0] if "." in full else ""
            body, tail = (full[:-2], r"(\..+)?") if full.endswith(".*") else (full, "")
            regex = re.escape(body).replace(r"\[\]", r"\[\]")
            regex = re.sub(r"<[^>]+>", r"[^.]+", regex.replace(r"\<", "<").replace(r"\>", ">"))
            patterns.append(re.compile(regex + tail))
    return patterns


def test_every_field_of_a_record_and_run_json_is_documented():
    patterns = _documented()
    fields = set()
    for run in (V1, V2):
        fields |= set().union(*(flat(record_schema.migrate(r)) for r in _raw(run)))
        fields |= flat(record_schema.migrate(json.loads((run / records.RUN_FILE).read_text())))
    missing = sorted(f for f in fields if not any(p.fullmatch(f) for p in patterns))
    assert not missing, f"not in docs/records.md: {missing}"


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_newer_schema_is_refused_in_one_line(tmp_path, capsys):
    run = _copy(tmp_path)
    target = records.record_paths(run)[1]
    _rewrite(target, lambda r: r.update(schema=records.SCHEMA + 1))
    for argv in (["report", str(run), "--out", str(tmp_path / "r.csv")], ["compare", str(run), str(V1)]):
        assert main(argv) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert str(target) in line and f"schema {records.SCHEMA + 1} is newer" in line and "upgrade diffbench" in line
    _rewrite(target, lambda r: r.update(schema=1))
    _rewrite(run / records.RUN_FILE, lambda r: r.update(schema=99))
    assert main(["report", str(run), "--out", str(tmp_path / "r.csv")]) == 2
    assert "run.json: run file schema 99 is newer" in capsys.readouterr().err


def test_two_records_of_one_case_in_a_run_are_refused_naming_both(tmp_path, capsys):
    run = _copy(tmp_path)
    first = records.record_paths(run)[0]
    copy = run / records.record_filename(7, json.loads(first.read_text())["case_id"])
    shutil.copy(first, copy)
    for argv in (["report", str(run), "--out", str(tmp_path / "r.csv")], ["compare", str(V1), str(run)]):
        assert main(argv) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert str(first) in line and str(copy) in line and "two records of case" in line


def test_compare_takes_one_run_per_side(tmp_path, capsys):
    _copy(tmp_path, V1)
    _copy(tmp_path, V2)
    assert main(["compare", str(tmp_path / "fixture"), str(V1)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "holds 2 runs" in line and "one run directory" in line


def test_old_report_column_names_still_select():
    recs = results.load_records([V2])
    from bench.report import selection

    assert [c.name for c in selection.select(recs, ["gflops_image", "gflop_sample"])] == ["gflop_image", "gflop_sample"]


def test_resume_rewrites_an_older_run_file_and_refuses_a_newer_one(tmp_path, capsys):
    from bench import suite_file
    from tests.test_hardening import OK_SUITE

    suite_path = tmp_path / "ok.yaml"
    suite_path.write_text(OK_SUITE.format(name="ok"))
    run = tmp_path / "results" / "ok" / "old-run"
    run.mkdir(parents=True)
    old = {"schema": 1, "run_id": run.name, "suite": "ok", "suite_sha256": suite_file.load(suite_path).content_sha256,
           "resumes": [], "cpu_peaks": {"4": {"fp32": {"gflops": 50.0, "method": "m"}, "threads": 4}}}
    (run / records.RUN_FILE).write_text(json.dumps({**old, "schema": 99}))
    assert main(["run", str(suite_path), "--resume", str(run), "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "run.json: run file schema 99 is newer" in line
    (run / records.RUN_FILE).write_text(json.dumps(old))
    assert main(["run", str(suite_path), "--resume", str(run), "--quiet"]) == 0
    meta = json.loads((run / records.RUN_FILE).read_text())
    assert meta["schema"] == records.SCHEMA and len(meta["resumes"]) == 1
    assert meta["cpu_peaks"]["4"]["fp32"] == {"gflop_per_s": 50.0, "method": "m"}  # kept, in schema-2 names
    assert [r["schema"] for r in _raw(run)] == [records.SCHEMA]
