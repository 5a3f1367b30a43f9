import json

import numpy as np
import pytest

from bench import compare
from bench.cli import main
from tests.report_records import lognormal_ms, record, write_run


def _runs(tmp_path, slowdown: float, converged_b=True, seed=0):
    """Run A and run B with the same cases; B's first case slower by `slowdown`; A has a case B lacks
    and B one A lacks."""
    rng = np.random.default_rng(seed)
    a = [record("a", 0, "rin", "p", sample_ms=lognormal_ms(rng, 10.0), train_ms=lognormal_ms(rng, 30.0)),
         record("a", 1, "unet2d", "q", sample_ms=lognormal_ms(rng, 20.0)),
         record("a", 2, "unet3d", "gone", sample_ms=lognormal_ms(rng, 5.0))]
    b = [record("b", 0, "rin", "p", sample_ms=lognormal_ms(rng, 10.0 * (1 + slowdown)),
                train_ms=lognormal_ms(rng, 30.0), converged=(converged_b, True)),
         record("b", 1, "unet2d", "q", sample_ms=lognormal_ms(rng, 20.0)),
         record("b", 3, "unet3d", "new", sample_ms=lognormal_ms(rng, 5.0))]
    return write_run(tmp_path, "s", "a", a), write_run(tmp_path, "s", "b", b)


def test_an_injected_30_percent_slowdown_is_flagged_and_exits_non_zero(tmp_path, capsys):
    run_a, run_b = _runs(tmp_path, 0.30)
    result = compare.compare_runs(run_a, run_b, threshold=0.05, alpha=0.01)
    rows = {(r["case"], r["step"]): r for r in result["rows"]}
    slow = rows[("rin/p/torch/cpu/b2", "sample_step")]
    assert slow["verdict"] == "regression" and slow["ci95"][0] > 1.2 and slow["p"] < 1e-6
    assert slow["ratio"] == pytest.approx(np.median(_samples(run_b, 0)) / np.median(_samples(run_a, 0)))
    assert rows[("rin/p/torch/cpu/b2", "train_step")]["verdict"] == "unchanged"
    assert rows[("unet2d/q/torch/cpu/b2", "sample_step")]["verdict"] == "unchanged"
    assert result["missing"] == ["unet3d/gone/torch/cpu/b2"] and result["new"] == ["unet3d/new/torch/cpu/b2"]
    assert result["uncompared"] == []
    assert main(["compare", str(run_a), str(run_b)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "in A only (missing from B): unet3d/gone" in out and "in B only (new): unet3d/new" in out
    assert main(["compare", str(run_a), str(run_b), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["regressions"] == 1


def _samples(run, index):
    return json.loads(next(run.glob(f"{index:04d}-*.json")).read_text())["timing"]["sample_step"]["samples_ms"]


def test_two_draws_from_one_distribution_are_not_flagged(tmp_path):
    run_a, run_b = _runs(tmp_path, 0.0)
    result = compare.compare_runs(run_a, run_b)
    assert {r["verdict"] for r in result["rows"]} == {"unchanged"} and result["regressions"] == 0
    assert main(["compare", str(run_a), str(run_b)]) == 0


def test_non_converged_timing_is_unreliable_not_a_regression(tmp_path):
    run_a, run_b = _runs(tmp_path, 0.30, converged_b=False)
    result = compare.compare_runs(run_a, run_b)
    row = next(r for r in result["rows"] if r["case"] == "rin/p/torch/cpu/b2" and r["step"] == "sample_step")
    assert row["verdict"] == "unreliable" and row["flag_if_reliable"] == "regression"
    assert result["regressions"] == 0


def test_a_case_that_now_fails_is_a_regression(tmp_path):
    rng = np.random.default_rng(0)
    run_a = write_run(tmp_path, "s", "a", [record("a", 0, "rin", "p", sample_ms=lognormal_ms(rng, 10.0))])
    run_b = write_run(tmp_path, "s", "b", [record("b", 0, "rin", "p", status="failed")])
    result = compare.compare_runs(run_a, run_b)
    assert [r["verdict"] for r in result["rows"]] == ["failed"] and result["regressions"] == 1


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_false_positive_rate_is_near_alpha(alpha):
    """Same distribution, threshold 0: only the test decides, so the flag rate is the test's size.
    4000 pairs of 20 samples: binomial sd of the rate is sqrt(alpha/4000) ~ 0.0035 at alpha 0.05."""
    rng = np.random.default_rng(123)
    n_pairs, n = 4000, 20
    a = np.exp(0.1 * rng.standard_normal((n_pairs, n)))
    b = np.exp(0.1 * rng.standard_normal((n_pairs, n)))
    ratio = np.median(b, axis=1) / np.median(a, axis=1)
    p = compare.mann_whitney_p(a, b, axis=1)
    rate = np.mean(compare.decide(ratio, p, threshold=0.0, alpha=alpha) != "unchanged")
    sd = np.sqrt(alpha * (1 - alpha) / n_pairs)
    assert abs(rate - alpha) < 4 * sd + 0.002
    # with the default 5% threshold a 10%-spread machine flags even less often
    assert np.mean(compare.decide(ratio, p, threshold=0.05, alpha=alpha) != "unchanged") <= rate


def test_power_against_a_30_percent_slowdown():
    rng = np.random.default_rng(7)
    a = np.exp(0.1 * rng.standard_normal((500, 20)))
    b = 1.3 * np.exp(0.1 * rng.standard_normal((500, 20)))
    verdicts = compare.decide(np.median(b, 1) / np.median(a, 1), compare.mann_whitney_p(a, b, axis=1), 0.05, 0.01)
    assert np.mean(verdicts == "regression") > 0.99


def test_bad_options_are_one_line(tmp_path, capsys):
    run_a, run_b = _runs(tmp_path, 0.0)
    assert main(["compare", str(run_a), str(run_b), "--threshold", "five"]) == 2
    assert main(["compare", str(run_a), str(run_b), "--alpha", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "allowed: a relative change like 5%" in err[0] and "allowed: a number in (0, 1)" in err[1]
    assert compare.parse_threshold("5%") == pytest.approx(0.05) == compare.parse_threshold("0.05")
