import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from bench import compare
from bench.cli import main
from tests.report_records import lognormal_ms, record, rounds_ms, write_run


def _runs(tmp_path, slowdown: float, rounds: int = 5, seed=0):
    """Run A and run B with the same cases, each step timed in `rounds` rounds (None: records
    written before rounds existed); B's first case slower by `slowdown`; A has a case B lacks and
    B one A lacks."""
    rng = np.random.default_rng(seed)

    def ms(median):
        return lognormal_ms(rng, median) if rounds is None else rounds_ms(rng, median, rounds)

    a = [record("a", 0, "rin", "p", sample_ms=ms(10.0), train_ms=ms(30.0)),
         record("a", 1, "unet2d", "q", sample_ms=ms(20.0)),
         record("a", 2, "unet3d", "gone", sample_ms=ms(5.0))]
    b = [record("b", 0, "rin", "p", sample_ms=ms(10.0 * (1 + slowdown)), train_ms=ms(30.0)),
         record("b", 1, "unet2d", "q", sample_ms=ms(20.0)),
         record("b", 3, "unet3d", "new", sample_ms=ms(5.0))]
    return write_run(tmp_path, "s", "a", a), write_run(tmp_path, "s", "b", b)


def _rows(result):
    return {(r["case"], r["step"]): r for r in result["rows"]}


def test_an_injected_30_percent_slowdown_over_5_rounds_is_flagged_and_exits_non_zero(tmp_path, capsys):
    run_a, run_b = _runs(tmp_path, 0.30)
    result = compare.compare_runs(run_a, run_b, threshold=0.05, alpha=0.01)
    rows = _rows(result)
    slow = rows[("rin/p/torch/cpu/b2", "sample_step")]
    assert slow["verdict"] == "regression" and slow["ci95"][0] > 1.15 and slow["p"] < 0.01
    assert slow["rounds_a"] == slow["rounds_b"] == 5
    medians_a, medians_b = _round_medians(run_a, 0), _round_medians(run_b, 0)
    assert slow["medians_a_ms"] == medians_a and slow["ratio"] == pytest.approx(np.median(medians_b) / np.median(medians_a))
    assert slow["p"] == pytest.approx(mannwhitneyu(medians_b, medians_a).pvalue)
    assert rows[("rin/p/torch/cpu/b2", "train_step")]["verdict"] == "unchanged"
    assert rows[("unet2d/q/torch/cpu/b2", "sample_step")]["verdict"] == "unchanged"
    assert result["missing"] == ["unet3d/gone/torch/cpu/b2"] and result["new"] == ["unet3d/new/torch/cpu/b2"]
    assert result["uncompared"] == []
    assert main(["compare", str(run_a), str(run_b)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "in A only (missing from B): unet3d/gone" in out and "in B only (new): unet3d/new" in out
    assert main(["compare", str(run_a), str(run_b), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["regressions"] == 1


def _round_medians(run, index):
    step = json.loads(next(run.glob(f"{index:04d}-*.json")).read_text())["timing"]["sample_step"]
    return [r["median_ms"] for r in step["rounds"]]


def test_pooled_samples_would_flag_what_the_rounds_do_not(tmp_path):
    """Processes of one run differ by up to 20% and each has tight samples (the machine's
    between-process noise): B's 8% is inside that scatter. Pooling the raw samples calls it
    significant; the rounds do not."""
    rng = np.random.default_rng(3)
    levels_a, levels_b = [10.0, 12.0, 10.5, 11.8, 10.2], [11.9, 10.1, 12.1, 10.4, 11.7]
    a = [record("a", 0, "rin", "p", sample_ms=[lognormal_ms(rng, m, 30, 0.01) for m in levels_a])]
    b = [record("b", 0, "rin", "p", sample_ms=[lognormal_ms(rng, m * 1.08, 30, 0.01) for m in levels_b])]
    row = compare.compare_runs(write_run(tmp_path, "s", "a", a), write_run(tmp_path, "s", "b", b))["rows"][0]
    assert row["verdict"] == "unchanged" and row["p"] > 0.05
    pooled = [b[0]["timing"]["sample_step"]["samples_ms"], a[0]["timing"]["sample_step"]["samples_ms"]]
    assert mannwhitneyu(*pooled).pvalue < 1e-6  # what comparing raw samples said


@pytest.mark.parametrize("rounds", [None, 1])
def test_a_single_round_is_never_significant_and_says_why(tmp_path, capsys, rounds):
    run_a, run_b = _runs(tmp_path, 1.0, rounds=rounds)  # B twice as slow
    result = compare.compare_runs(run_a, run_b)
    slow = _rows(result)[("rin/p/torch/cpu/b2", "sample_step")]
    assert slow["ratio"] > 1.8 and slow["verdict"] == "inconclusive" and slow["ci95"] is None
    assert "cannot reach p < 0.01" in slow["why"] and "rounds: 5 or more" in slow["why"]
    assert ("without rounds" in slow.get("note", "")) == (rounds is None)
    assert result["regressions"] == 0
    assert main(["compare", str(run_a), str(run_b)]) == 0
    out = capsys.readouterr().out
    assert "inconclusive: 1 round(s) in A and 1 in B" in out
    assert ("records without rounds (written before rounds existed) count as one round" in out) == (rounds is None)


def test_too_few_rounds_for_alpha_are_inconclusive_enough_rounds_are_flagged(tmp_path):
    """R rounds against R reach at best p = 2 / C(2R, R): 0.1 at R = 3, 0.029 at 4, 0.0079 at 5."""
    assert compare.smallest_p(5, 5) == pytest.approx(compare.mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]))
    assert compare.rounds_needed(0.01) == 5 and compare.rounds_needed(0.05) == 4
    a, b = [10.0, 10.2, 9.9], [13.0, 13.1, 12.9]  # a clear 30% shift over 3 rounds
    assert compare.compare_rounds(a, b, 0.05, 0.2)["verdict"] == "regression"
    three = compare.compare_rounds(a, b, 0.05, 0.01)
    assert three["verdict"] == "inconclusive" and "rounds: 5 or more" in three["why"]
    assert compare.compare_rounds(a + [10.1, 10.05], b + [13.2, 12.95], 0.05, 0.01)["verdict"] == "regression"
    assert compare.compare_rounds(b + [13.2, 12.95], a + [10.1, 10.05], 0.05, 0.01)["verdict"] == "improvement"


def test_a_case_that_now_fails_is_a_regression(tmp_path):
    rng = np.random.default_rng(0)
    run_a = write_run(tmp_path, "s", "a", [record("a", 0, "rin", "p", sample_ms=rounds_ms(rng, 10.0))])
    run_b = write_run(tmp_path, "s", "b", [record("b", 0, "rin", "p", status="failed")])
    result = compare.compare_runs(run_a, run_b)
    assert [r["verdict"] for r in result["rows"]] == ["failed"] and result["regressions"] == 1


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_identical_rounds_are_flagged_at_most_at_rate_alpha(alpha):
    """Same distribution of round medians, threshold 0: only the test decides, so the flag rate is
    at most alpha (the exact test's size: 2 x 0.0040 at alpha 0.01 with 5 against 5 rounds).
    4000 pairs: binomial sd of the rate is sqrt(alpha/4000) ~ 0.0035 at alpha 0.05."""
    rng = np.random.default_rng(123)
    n_pairs, rounds = 4000, 5
    a = np.exp(0.1 * rng.standard_normal((n_pairs, rounds)))
    b = np.exp(0.1 * rng.standard_normal((n_pairs, rounds)))
    ratio = np.median(b, axis=1) / np.median(a, axis=1)
    p = compare.mann_whitney_p(a, b, axis=1)
    rate = np.mean(compare.decide(ratio, p, threshold=0.0, alpha=alpha) != "unchanged")
    sd = np.sqrt(alpha * (1 - alpha) / n_pairs)
    assert rate < alpha + 4 * sd
    assert np.mean(compare.decide(ratio, p, threshold=0.05, alpha=alpha) != "unchanged") <= rate


def test_power_against_a_30_percent_slowdown_over_5_rounds():
    """Round medians scattered 5% (log sd) between processes: a 30% slowdown separates 5 rounds
    from 5 nearly always."""
    rng = np.random.default_rng(7)
    a = np.exp(0.05 * rng.standard_normal((500, 5)))
    b = 1.3 * np.exp(0.05 * rng.standard_normal((500, 5)))
    verdicts = compare.decide(np.median(b, 1) / np.median(a, 1), compare.mann_whitney_p(a, b, axis=1), 0.05, 0.01)
    assert np.mean(verdicts == "regression") > 0.99


def test_bad_options_are_one_line(tmp_path, capsys):
    run_a, run_b = _runs(tmp_path, 0.0)
    assert main(["compare", str(run_a), str(run_b), "--threshold", "five"]) == 2
    assert main(["compare", str(run_a), str(run_b), "--alpha", "1.5"]) == 2
    assert main(["compare", str(run_a), str(run_b), "--threshold", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "allowed: a relative change like 5%" in err[0] and "allowed: a number in (0, 1)" in err[1]
    assert "'5': a bare number is a fraction (5 would mean 500%)" in err[2] and "allowed: a relative change" in err[2]
    assert compare.parse_threshold("5%") == pytest.approx(0.05) == compare.parse_threshold("0.05")
    assert compare.parse_threshold("1") == 1.0 and compare.parse_threshold("150%") == pytest.approx(1.5)
    for bad in ("1.5", "-1%", "nan", "inf%", ""):
        with pytest.raises(compare.CompareError, match="allowed: a relative change"):
            compare.parse_threshold(bad)


def test_the_cpu_metric_compares_the_rounds_cpu_time(tmp_path, capsys):
    """B's wall time is 30% up (a busier machine) while its CPU time per step is not."""
    rng = np.random.default_rng(5)
    a, b = record("a", 0, "rin", "p", sample_ms=rounds_ms(rng, 10.0)), record("b", 0, "rin", "p", sample_ms=rounds_ms(rng, 13.0))
    for rec in (a, b):
        for k, entry in enumerate(rec["timing"]["sample_step"]["rounds"]):
            entry["cpu_median_ms"] = 8.0 * (1 + 0.01 * k * (-1) ** k)
    run_a, run_b = write_run(tmp_path, "s", "a", [a]), write_run(tmp_path, "s", "b", [b])
    assert compare.compare_runs(run_a, run_b)["rows"][0]["verdict"] == "regression"
    cpu = compare.compare_runs(run_a, run_b, metric="cpu")["rows"][0]
    assert cpu["verdict"] == "unchanged" and cpu["ratio"] == pytest.approx(1.0) and cpu["median_a_ms"] == pytest.approx(8.0)
    assert main(["compare", str(run_a), str(run_b), "--metric", "cpu"]) == 0
    assert "process CPU time per step" in capsys.readouterr().out
