"""The runner's isolation and resume, for real: subprocesses, signals, SIGKILL of the runner."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import records, results, runner, suite_file

REPO = Path(__file__).resolve().parents[1]

FAULT_SUITE = """
name: faults
plugins: [tests.fault_arch]
defaults: {backend: torch, device: cpu, batch: 1, measure: [params], timeout: 60, threads: 1}
cases:
  - {preset: fault-raise-tiny}
  - {preset: fault-abort-tiny}
  - {preset: fault-hang-tiny, timeout: 4}
  - {preset: fault-nan-tiny, measure: [params, sample_step]}
  - {preset: fault-ok-tiny}
"""


def _suite(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return suite_file.load(path)


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    suite = _suite(tmp, FAULT_SUITE)
    run_dir = runner.run_suite(suite, results_root=tmp / "results", show_progress=False)
    return run_dir, records.read_records(run_dir)


def _by_preset(recs, preset):
    (rec,) = [r for r in recs.values() if r["case"]["preset"] == preset]
    return rec


def test_every_case_gets_a_record(fault_run):
    run_dir, recs = fault_run
    assert len(recs) == 5
    meta = json.loads((run_dir / records.RUN_FILE).read_text())
    assert meta["ended"] is not None and meta["cases"] == 5
    assert meta["provenance"]["versions"]["python"]
    assert len(meta["suite_sha256"]) == 64


def test_an_exception_becomes_a_failed_record(fault_run):
    rec = _by_preset(fault_run[1], "fault-raise-tiny")
    assert rec["status"] == "failed"
    assert "deliberate failure" in rec["error"]["message"]


def test_a_signal_becomes_a_failed_record(fault_run):
    rec = _by_preset(fault_run[1], "fault-abort-tiny")
    assert rec["status"] == "failed"
    assert rec["worker"]["signal"] == "SIGABRT"
    assert "SIGABRT" in rec["error"]["message"]


def test_a_hang_is_killed_at_its_timeout(fault_run):
    rec = _by_preset(fault_run[1], "fault-hang-tiny")
    assert rec["status"] == "failed" and rec["worker"]["timed_out"]
    assert "timed out after 4 s" in rec["error"]["message"]
    assert 4 <= rec["duration_s"] < 30


def test_nan_output_becomes_a_failed_record(fault_run):
    rec = _by_preset(fault_run[1], "fault-nan-tiny")
    assert rec["status"] == "failed"
    assert "non-finite" in rec["error"]["message"].lower()


def test_the_control_case_succeeds(fault_run):
    rec = _by_preset(fault_run[1], "fault-ok-tiny")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["params"] == 2 * 9 * 3 * 8
    assert rec["worker"]["threads"] == 1


def test_results_frame_has_one_row_per_case(fault_run):
    frame = results.load(fault_run[0])
    assert len(frame) == 5
    assert sorted(frame["status"]) == ["failed"] * 4 + ["ok"]


RESUME_SUITE = """
name: resume
plugins: [tests.fault_arch]
defaults: {backend: torch, device: cpu, measure: [params], threads: 1}
cases:
  - preset: fault-ok-tiny
    matrix: {batch: [1, 2, 3, 4, 5]}
"""


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_suite_then_resume_completes_with_every_record_intact(tmp_path):
    suite_path = tmp_path / "resume.yaml"
    suite_path.write_text(RESUME_SUITE)
    root = tmp_path / "results"
    proc = _run_cli(["run", str(suite_path), "--results", str(root), "--quiet"])
    deadline = time.monotonic() + 120
    run_dir = None
    while time.monotonic() < deadline:
        dirs = list(root.glob("resume/*"))
        if dirs and len(records.record_paths(dirs[0])) >= 2:
            run_dir = dirs[0]
            break
        time.sleep(0.05)
    assert run_dir is not None, "the runner never wrote two records"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in records.record_paths(run_dir)}
    assert 2 <= len(before) < 5

    resumed = _run_cli(["run", str(suite_path), "--results", str(root), "--resume", str(run_dir), "--quiet"])
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    after = records.record_paths(run_dir)
    assert len(after) == 5
    recs = [json.loads(p.read_text()) for p in after]
    assert sorted(r["case"]["batch"] for r in recs) == [1, 2, 3, 4, 5]
    assert all(r["status"] == "ok" for r in recs)
    for name, content in before.items():  # records written before the kill are untouched
        assert (run_dir / name).read_bytes() == content
    meta = json.loads((run_dir / records.RUN_FILE).read_text())
    assert len(meta["resumes"]) == 1 and meta["ended"]
    assert not list(run_dir.glob(".*.tmp"))


def test_resume_refuses_a_changed_suite(tmp_path):
    suite = _suite(tmp_path, RESUME_SUITE)
    run_dir, _ = runner.start_run(suite, tmp_path / "results")
    changed = _suite(tmp_path, RESUME_SUITE.replace("5]", "6]"))
    with pytest.raises(runner.RunError, match="changed since the run started"):
        runner.run_suite(changed, resume=run_dir)


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - {preset: rin-tiny, bogus: 1}\n")
    for args in (["plan", str(bad)], ["run", str(bad)], ["describe", "nope"], ["plan", str(tmp_path / "missing.yaml")],
                 ["run", str(bad.with_name("x.yaml")), "--resume", str(tmp_path)]):
        proc = _run_cli(args)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (args, err)
        assert "Traceback" not in err and err.startswith("diffbench: error:"), err


@pytest.mark.parametrize("extra, needle", [(["--override", "[1]"], "--override"),
                                           (["--override", "{bad"], "--override"),
                                           (["--batch", "0"], "--batch")])
def test_flops_cli_rejects_bad_arguments_in_one_line(capsys, extra, needle):
    from bench.cli import main

    assert main(["flops", "rin", "--preset", "rin-tiny", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffbench: error:") and needle in err and "Traceback" not in err, err


@pytest.mark.parametrize("text", ["{bad", "[]", '{"suite_sha256": "x"}'])
def test_resume_of_a_broken_run_json_is_a_run_error(tmp_path, text):
    suite = _suite(tmp_path, RESUME_SUITE)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / records.RUN_FILE).write_text(text)
    with pytest.raises(runner.RunError, match="--resume"):
        runner.run_suite(suite, resume=run_dir)


def test_flop_counters_see_a_plugin_registered_apart_from_its_config(tmp_path):
    suite = _suite(tmp_path, "name: split\nplugins: [tests.split_plugin_arch]\n"
                             "cases: [{preset: split-ok-tiny, measure: [flops], threads: 1}]\n")
    run_dir = runner.run_suite(suite, results_root=tmp_path / "results", show_progress=False)
    (rec,) = records.read_records(run_dir).values()
    assert rec["status"] == "ok", rec.get("error")
    errors = {name: c["error"] for name, c in rec["flops"]["counters"].items() if c["error"]}
    assert not errors and rec["flops"]["agreement"]["ok"], errors


def test_a_child_exits_at_once_when_its_parent_is_already_gone():
    code = "from bench.child_process import die_with_parent; die_with_parent(); print('alive')"
    env = {**os.environ, "DIFFBENCH_PARENT_PID": "1"}  # not our parent: as if it had died and we were reparented
    gone = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert gone.returncode == 1 and "alive" not in gone.stdout
    from bench.child_process import child_env

    ok = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "alive"
