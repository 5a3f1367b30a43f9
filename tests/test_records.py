import json
import math

import pytest

from bench import records, results


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(ValueError):
        records.write_json_atomic(target, {"x": float("nan")})  # JSON has no NaN
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    records.write_json_atomic(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}


def test_non_finite_paths_finds_nested_nans():
    rec = {"a": 1.0, "b": {"c": [1.0, math.nan], "d": math.inf}, "e": "nan"}
    assert records.non_finite_paths(rec) == ["b.c[1]", "b.d"]


def test_clean_partial_removes_only_temp_files(tmp_path):
    (tmp_path / ".0001-x.json.abc.tmp").write_text("{")
    (tmp_path / "0001-x.json").write_text("{}")
    assert records.clean_partial(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["0001-x.json"]


def _fake_run(run_dir, n):
    run_dir.mkdir(parents=True)
    records.write_json_atomic(run_dir / records.RUN_FILE, {"run_id": run_dir.name, "provenance": {"git": {"sha": "abc", "dirty": False}}})
    for i in range(n):
        rec = {"case_id": f"c{i}", "suite": "s", "run_id": run_dir.name, "case": {"index": i, "batch": 2},
               "status": "ok", "timing": {"sample_step": {"median_ms": 1.5 * i, "samples_ms": [1.0, 2.0]}}}
        records.write_json_atomic(run_dir / records.record_filename(i, f"c{i}"), rec)


def test_results_load_flattens_and_joins_provenance(tmp_path):
    _fake_run(tmp_path / "s" / "run1", 3)
    _fake_run(tmp_path / "s" / "run2", 2)
    frame = results.load(tmp_path)
    assert len(frame) == 5
    assert frame["timing.sample_step.median_ms"].tolist() == [0.0, 1.5, 3.0, 0.0, 1.5]
    assert frame["git.sha"].unique().tolist() == ["abc"]
    assert frame["timing.sample_step.samples_ms"].iloc[0] == [1.0, 2.0]
    assert len(results.load(tmp_path / "s" / "run2")) == 2
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "missing")


def test_results_load_names_a_file_that_is_not_a_record_and_takes_run_json_for_its_run(tmp_path):
    _fake_run(tmp_path / "s" / "run1", 2)
    assert len(results.load(tmp_path / "s" / "run1" / records.RUN_FILE)) == 2
    for name, text in (("junk.json", "not json"), ("other.json", "{}")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(records.RecordError, match=name):
            results.load(path)


def test_progress_bar_counts_and_names_failures(capsys):
    from bench.progress import Progress

    with Progress(total=3, done=1, enabled=True) as bar:
        for case_id, status in [("a/b", "ok"), ("c/d", "failed")]:
            bar.start(case_id)
            bar.finish(case_id, status)
    assert (bar.done, bar.failed) == (3, 1)
    assert "failed c/d" in capsys.readouterr().err.replace("\n", " ")


def test_progress_is_silent_when_disabled(capsys):
    from bench.progress import Progress

    with Progress(total=1, enabled=False) as bar:
        bar.start("x")
        bar.finish("x", "failed")
    assert capsys.readouterr() == ("", "")
