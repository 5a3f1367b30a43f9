"""Rounds (bench/rounds.py): the runner's round-by-round order across cases, the merged record,
resume of a run stopped mid-round (fake processes), and one real run with `rounds: 2`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench import case_process, records, rounds, runner, suite_file
from bench.measure.stats import bootstrap_median_ci
from tests.report_records import timing_entry

SUITE = """
name: rounds
plugins: [tests.fault_arch]
defaults: {backend: torch, device: cpu, batch: 1, measure: [params, sample_step], threads: 1, rounds: 3}
cases:
  - {preset: fault-ok-tiny}
  - {preset: fault-ok-tiny, batch: 2, measure: [params, train_step, memory], rounds: 2}
  - {preset: fault-ok-tiny, batch: 3, measure: [params]}
"""


def _suite(tmp_path, text=SUITE):
    path = tmp_path / "rounds.yaml"
    path.write_text(text)
    return suite_file.load(path)


def _round_record(case, k: int, status: str = "ok") -> dict:
    """What one process of round k gives: params only in round 1, the timed step's median 10 x k ms."""
    rng = np.random.default_rng(k)
    rec = {"schema": records.SCHEMA, "suite": "rounds", "run_id": "r", "case_id": case.id, "case": case.to_dict(),
           "started": f"t{k}", "ended": f"t{k}+", "duration_s": 1.0, "status": status,
           "worker": {"log": case_process.log_name(case, k), "returncode": 0, "node": {"executor": "fake"}}}
    if status != "ok":
        rec["error"] = {"type": "Timeout", "message": "timed out"}
        return rec
    if k == 1:
        rec["params"] = 42
    step = timing_entry((10.0 * k * np.exp(0.01 * rng.standard_normal(12))).tolist(), case.batch)
    step.update(cpu_median_ms=9.0 * k, cpu_samples_ms=[9.0 * k] * 12, contended=k == 2,
                utilization={"achieved_gflops_per_s": 1.0 / step["median_ms"], "mfu": 0.5 / step["median_ms"]})
    timed = [m for m in case.measure if m in rounds.TIMED]
    rec["timing"] = {m: step for m in timed}
    return rec


class FakeProcesses:
    """Stands in for runner.execute_case: records (case index, round, only) and can stop the run
    (KeyboardInterrupt, as Ctrl-C or SIGTERM) at a given call."""

    def __init__(self, stop_at: int | None = None, fail: tuple | None = None):
        self.calls, self.stop_at, self.fail = [], stop_at, fail

    def __call__(self, case, suite, run_dir, run_id, job):
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        self.calls.append((case.index, job.round, job.only))
        status = "failed" if (case.index, job.round) == self.fail else "ok"
        return _round_record(case, job.round, status)


def test_rounds_interleave_across_cases_and_later_rounds_time_only(tmp_path, monkeypatch):
    fake = FakeProcesses()
    monkeypatch.setattr(runner, "execute_case", fake)
    run_dir = runner.run_suite(_suite(tmp_path), results_root=tmp_path / "results", show_progress=False)
    timed = ["sample_step", "train_step"]
    assert fake.calls == [(0, 1, None), (1, 1, None), (2, 1, None), (0, 2, timed), (1, 2, timed), (0, 3, timed)]
    recs = sorted(records.read_records(run_dir).values(), key=lambda r: r["case"]["index"])
    assert len(recs) == 3 and not (run_dir / records.ROUNDS_DIR).exists()
    assert [len(r["worker"]["rounds"]) for r in recs] == [3, 2, 1]
    assert [r["rounds_planned"] for r in recs] == [3, 2, 1]
    assert recs[1]["timing"]["train_step"]["median_ms"] == pytest.approx(15.0, rel=0.02)


def test_merged_record_keeps_every_round_and_medians_over_rounds():
    case = _suite_cases()[0]
    results = [_round_record(case, k) for k in (1, 2, 3)]
    merged = rounds.merge(results, 3)
    step = merged["timing"]["sample_step"]
    per_round = [r["timing"]["sample_step"] for r in results]
    medians = [t["median_ms"] for t in per_round]
    assert [e["median_ms"] for e in step["rounds"]] == medians and [e["round"] for e in step["rounds"]] == [1, 2, 3]
    assert [e["samples_ms"] for e in step["rounds"]] == [t["samples_ms"] for t in per_round]
    assert step["median_ms"] == np.median(medians) and step["ci95_ms"] == list(bootstrap_median_ci(medians))
    assert step["samples_ms"] == sum((t["samples_ms"] for t in per_round), []) and step["reps"] == 36
    assert step["cpu_median_ms"] == 18.0 and step["contended"] is True
    assert step["wall_over_cpu"] == pytest.approx(step["median_ms"] / 18.0)
    assert step["image_steps_per_s"] == pytest.approx(1e3 / step["median_ms"])
    lo, hi = step["ci95_ms"]
    assert step["image_steps_per_s_ci95"] == pytest.approx([1e3 / hi, 1e3 / lo])
    assert step["utilization"]["achieved_gflops_per_s"] == pytest.approx(1.0 / step["median_ms"])
    assert step["utilization"]["mfu"] == pytest.approx(0.5 / step["median_ms"])
    assert step["converged_rounds"] == 3 and step["stop_reason"] == "converged"
    assert merged["params"] == 42 and merged["status"] == "ok" and merged["duration_s"] == 3.0
    assert merged["started"] == "t1" and merged["ended"] == "t3+"
    assert [w["log"] for w in merged["worker"]["rounds"]] == [case_process.log_name(case, k) for k in (1, 2, 3)]
    assert case_process.log_name(case, 2).endswith(".round2.log") and not case_process.log_name(case, 1).endswith(".round1.log")
    one = rounds.merge(results[:1], 1)["timing"]["sample_step"]  # one round: its own statistics
    assert {k: v for k, v in one.items() if k not in ("rounds", "converged_rounds")} == per_round[0]


def test_a_failed_later_round_fails_the_case_and_keeps_the_rounds_before_it():
    case = _suite_cases()[0]
    merged = rounds.merge([_round_record(case, 1), _round_record(case, 2), _round_record(case, 3, "failed")], 5)
    assert merged["status"] == "failed" and merged["error"]["message"] == "round 3 of 5: timed out"
    assert len(merged["timing"]["sample_step"]["rounds"]) == 2 and len(merged["worker"]["rounds"]) == 3


def test_a_run_stopped_mid_round_resumes_the_missing_rounds_only(tmp_path, monkeypatch):
    suite = _suite(tmp_path)
    stopped = FakeProcesses(stop_at=4)  # after (0,1) (1,1) (2,1) (0,2): case 1's round 2 never ran
    monkeypatch.setattr(runner, "execute_case", stopped)
    with pytest.raises(runner.Interrupted) as info:
        runner.run_suite(suite, results_root=tmp_path / "results", show_progress=False)
    run_dir = info.value.run_dir
    assert info.value.done == 1 and list(records.read_records(run_dir)) == [suite.cases[2].id]
    kept = sorted(p.name for p in (run_dir / records.ROUNDS_DIR).iterdir())
    assert kept == ["0000-" + _slug(suite.cases[0]) + ".round1.json", "0000-" + _slug(suite.cases[0]) + ".round2.json",
                    "0001-" + _slug(suite.cases[1]) + ".round1.json"]
    assert not [p.name for p in records.stray_paths(run_dir)]  # the rounds folder is the run's own

    resumed = FakeProcesses()
    monkeypatch.setattr(runner, "execute_case", resumed)
    runner.run_suite(suite, resume=run_dir, show_progress=False)
    timed = ["sample_step", "train_step"]
    assert resumed.calls == [(1, 2, timed), (0, 3, timed)]
    recs = records.read_records(run_dir)
    assert len(recs) == 3 and not (run_dir / records.ROUNDS_DIR).exists()
    first = recs[suite.cases[0].id]["timing"]["sample_step"]
    assert [round(e["median_ms"] / 10) for e in first["rounds"]] == [1, 2, 3]  # rounds 1-2 kept, 3 new


def test_damaged_or_foreign_round_files_run_again(tmp_path):
    case = _suite_cases()[0]
    job = rounds.Job(case, 1, 3)
    rounds.save_round(tmp_path, job, _round_record(case, 1))
    rounds.save_round(tmp_path, rounds.Job(case, 2, 3), _round_record(case, 2))
    rounds.round_path(tmp_path, case, 2).write_text("{half a rec")
    assert [len(v) for v in rounds.load_partial(tmp_path, [case]).values()] == [1]
    assert not rounds.round_path(tmp_path, case, 2).exists()
    other = _suite_cases()[1]
    rounds.round_path(tmp_path, other, 1).write_text(json.dumps(_round_record(case, 1)))  # another case's round
    assert rounds.load_partial(tmp_path, [other]) == {other.id: []}


def test_a_failed_first_round_ends_the_case(tmp_path, monkeypatch):
    fake = FakeProcesses(fail=(0, 1))
    monkeypatch.setattr(runner, "execute_case", fake)
    run_dir = runner.run_suite(_suite(tmp_path), results_root=tmp_path / "results", show_progress=False)
    assert [c[:2] for c in fake.calls] == [(0, 1), (1, 1), (2, 1), (1, 2)]
    assert records.read_records(run_dir)[_suite_cases()[0].id]["status"] == "failed"


def _suite_cases():
    return suite_file.loads(SUITE, "rounds.yaml").cases


def _slug(case) -> str:
    return records.record_filename(case.index, case.id)[5:-5]


def test_a_real_run_with_two_rounds_through_the_cli(tmp_path):
    """Two cases x two rounds in real worker processes: round 1 of both before round 2 of either,
    one record per case with both rounds' samples, a log per round."""
    suite = tmp_path / "two.yaml"
    suite.write_text("name: two\nplugins: [tests.fault_arch]\n"
                     "defaults: {backend: torch, device: cpu, measure: [params, sample_step], threads: 1, rounds: 2,"
                     " timeout: 120}\ncases:\n  - {preset: fault-ok-tiny}\n  - {preset: fault-ok-tiny, batch: 2}\n")
    out = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(tmp_path / "r"),
                          "--quiet"], cwd=runner.CODE_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "r" / "two").iterdir()
    recs = sorted(records.read_records(run_dir).values(), key=lambda r: r["case"]["index"])
    assert [r["status"] for r in recs] == ["ok", "ok"] and not (run_dir / records.ROUNDS_DIR).exists()
    for rec in recs:
        step, procs = rec["timing"]["sample_step"], rec["worker"]["rounds"]
        assert len(step["rounds"]) == 2 and len(procs) == 2 and rec["params"] > 0
        assert step["median_ms"] == pytest.approx(np.median([e["median_ms"] for e in step["rounds"]]))
        assert len(step["samples_ms"]) == sum(len(e["samples_ms"]) for e in step["rounds"])
        assert all((run_dir / p["log"]).is_file() for p in procs) and procs[1]["log"].endswith(".round2.log")
    # round 1 of the second case ended before round 2 of the first began (ISO times, same clock)
    assert recs[1]["worker"]["rounds"][0]["ended"] <= recs[0]["worker"]["rounds"][1]["started"]
