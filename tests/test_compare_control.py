"""`compare --control CASE` (bench/compare_control.py): a case whose code did not change divides out
the machine's drift between two runs, round by round."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import compare
from bench.cli import main
from bench.compare_control import normalized
from tests.report_records import record, rounds_ms, write_run


def _drifted_runs(tmp_path, drift: float, slowdown: float = 0.0, seed: int = 0, rounds: int = 5):
    """Runs A and B of three cases: `ctl` and `same` unchanged, `changed` slower by `slowdown` in B;
    every round of B runs on a machine `drift` times slower (all cases of a round alike, as a busy
    host makes them), and each round's wave shares a random machine factor in both runs."""
    rng = np.random.default_rng(seed)

    def run(name, factor, slow):
        wave = np.exp(0.08 * rng.standard_normal(rounds))  # what one round's wave of processes saw
        out = []
        for index, (preset, median) in enumerate((("ctl", 10.0), ("same", 20.0), ("changed", 30.0 * slow))):
            per_round = rounds_ms(rng, median * factor, rounds, n=9, between=0.02)
            out.append(record(name, index, "unet2d", preset, sample_ms=[[x * w for x in r] for r, w in zip(per_round, wave)]))
        return write_run(tmp_path, "s", name, out)

    return run("a", 1.0, 1.0), run("b", drift, 1.0 + slowdown)


def _rows(result):
    return {r["case"].split("/")[1]: r for r in result["rows"]}


def test_a_slower_machine_is_flagged_without_a_control_and_divided_out_with_one(tmp_path, capsys):
    run_a, run_b = _drifted_runs(tmp_path, drift=1.3)
    plain = _rows(compare.compare_runs(run_a, run_b))
    assert plain["same"]["verdict"] == "regression"  # identical code: what compare says without a control
    result = compare.compare_runs(run_a, run_b, control="unet2d/ctl/torch/cpu/b2")
    rows = _rows(result)
    assert set(rows) == {"same", "changed"} and all(r["verdict"] == "unchanged" for r in rows.values())
    assert rows["same"]["ratio"] == pytest.approx(1.0, abs=0.05)
    drift = result["control_drift"]["sample_step"]["ratio"]  # 1.3 times the waves' scatter (8% per round)
    assert 1.1 < drift < 1.55 and drift == pytest.approx(plain["same"]["ratio"], rel=0.15)
    assert rows["same"]["median_b_ms"] == pytest.approx(plain["same"]["median_b_ms"])  # medians stay in ms, as timed
    assert main(["compare", str(run_a), str(run_b), "--control", "ctl"]) == 0
    out = capsys.readouterr().out
    assert "divided by the control case unet2d/ctl/torch/cpu/b2" in out and f"sample_step x{drift:.3f}" in out
    assert main(["compare", str(run_a), str(run_b)]) == 1
    assert "A and B ran at different times" in capsys.readouterr().out


def test_a_real_slowdown_under_drift_is_still_found(tmp_path):
    run_a, run_b = _drifted_runs(tmp_path, drift=0.8, slowdown=0.3, seed=3)
    rows = _rows(compare.compare_runs(run_a, run_b, control="ctl"))
    assert rows["changed"]["verdict"] == "regression" and rows["changed"]["ratio"] == pytest.approx(1.3, rel=0.08)
    assert rows["same"]["verdict"] == "unchanged"


def test_division_is_round_by_round_and_checked():
    case = {"rounds": [{"round": 1, "median_ms": 4.0}, {"round": 2, "median_ms": 9.0}]}
    ctl = {"rounds": [{"round": 1, "median_ms": 2.0}, {"round": 2, "median_ms": 3.0}]}
    assert normalized(case, ctl, "median_ms") == ([2.0, 3.0], None)
    assert normalized(case, None, "median_ms")[1] == "the control case did not time this step"
    short = {"rounds": [{"round": 1, "median_ms": 2.0}]}
    assert "rounds [1, 2] of the case and [1] of the control differ" in normalized(case, short, "median_ms")[1]
    assert normalized({"median_ms": 5.0}, {"median_ms": 2.5}, "median_ms") == ([2.0], None)  # pre-rounds records


def test_a_step_the_control_did_not_time_is_uncompared_with_the_reason(tmp_path, capsys):
    rng = np.random.default_rng(1)
    runs = []
    for name in ("a", "b"):
        runs.append(write_run(tmp_path, "s", name, [
            record(name, 0, "unet2d", "ctl", sample_ms=rounds_ms(rng, 10.0)),
            record(name, 1, "unet2d", "x", sample_ms=rounds_ms(rng, 10.0), train_ms=rounds_ms(rng, 40.0))]))
    result = compare.compare_runs(*runs, control="ctl")
    by_step = {r["step"]: r for r in result["rows"]}
    assert by_step["train_step"]["verdict"] == "uncompared"
    assert by_step["train_step"]["why"] == "not divided by the control: the control case did not time this step"
    assert by_step["sample_step"]["verdict"] == "unchanged" and result["regressions"] == 0
    assert main(["compare", str(runs[0]), str(runs[1]), "--control", "ctl", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["control"] == "unet2d/ctl/torch/cpu/b2"


@pytest.mark.parametrize("pattern, says", [("nope", "matches no case in both runs"),
                                            ("unet2d/*", "matches 3 cases")])
def test_a_control_that_names_no_single_case_is_one_line(tmp_path, capsys, pattern, says):
    run_a, run_b = _drifted_runs(tmp_path, drift=1.0)
    assert main(["compare", str(run_a), str(run_b), "--control", pattern]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "allowed: one case id in both runs" in err[0]


def _step(medians) -> dict:
    return {"median_ms": float(np.median(medians)),
            "rounds": [{"round": k + 1, "median_ms": float(v)} for k, v in enumerate(medians)]}


def test_false_positives_with_a_control_stay_at_alpha_under_any_drift():
    """Simulated runs whose machine drifts by up to 1.5x between them and whose rounds' waves
    scatter 10%, through compare_steps with and without the control: with it, identical code is
    flagged at most at rate alpha (the exact Mann-Whitney size, 0.0079 at 5 v 5); without it, far
    above alpha."""
    rng = np.random.default_rng(11)
    n, rounds, flagged, plain = 400, 5, 0, 0
    for _ in range(n):
        drift = float(np.exp(rng.uniform(-0.4, 0.4)))
        wave_a, wave_b = np.exp(0.1 * rng.standard_normal(rounds)), drift * np.exp(0.1 * rng.standard_normal(rounds))
        noise = lambda: np.exp(0.02 * rng.standard_normal(rounds))  # noqa: E731
        case_a, case_b = _step(10 * wave_a * noise()), _step(10 * wave_b * noise())
        ctl = (_step(4 * wave_a * noise()), _step(4 * wave_b * noise()))
        flagged += compare.compare_steps(case_a, case_b, 0.05, 0.01, control=ctl)["verdict"] != "unchanged"
        plain += compare.compare_steps(case_a, case_b, 0.05, 0.01)["verdict"] != "unchanged"
    assert flagged / n < 0.01 + 4 * np.sqrt(0.01 / n)
    assert plain / n > 0.3
