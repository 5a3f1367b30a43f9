"""The conformance kit fails on defective models, with the numbers; it skips (never fakes)
what does not apply; `diffbench check` prints one line per check and exits 1 on a failure."""

import json

import pytest

from architectures import registry
from bench.conformance import Kit, run
from tests import kit_faults  # noqa: F401  (registers kitfault-*)

CHEAP = ["contract", "forward", "params", "parity", "extras"]  # in-process, no counters


def _results(bug: str, backends=None) -> dict:
    report = run(f"kitfault-{bug}", backends=backends, only=CHEAP)
    return {r.check: r for r in report.results}


def test_control_passes_every_cheap_check():
    results = _results("ok")
    assert [r.status for r in results.values()] == ["pass"] * 7, {k: r.detail for k, r in results.items()}
    assert "max error" in results["parity"].detail


@pytest.mark.parametrize("bug,check,message", [
    ("shape", "forward:torch", "expected (2, 4, 4, 2)"),
    ("nan", "forward:jax", "non-finite"),
    ("tuple", "forward:torch", "declares no 'latents'"),
    ("ignore_y", "extras:torch", "does not depend on input 'y'"),
    ("rename", "parity", "do not match"),
])
def test_defects_fail_the_right_check(bug, check, message):
    result = Kit(registry.get(f"kitfault-{bug}")).run(check)
    assert result.status == "fail" and message in result.detail, result


def test_one_selected_backend_skips_the_comparisons():
    results = _results("ok", backends=["torch"])
    assert set(results) == {"contract", "forward:torch", "params", "parity", "extras:torch"}
    assert results["parity"].status == results["params"].status == "skip"
    assert "only torch selected" in results["parity"].detail


def test_check_command_lines_json_and_exit_status(capsys):
    from bench.cli import main

    assert main(["check", "kitfault-shape", "--only", "contract", "forward", "--backend", "torch"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("kitfault-shape (preset kitfault-shape-tiny; backends torch")
    assert out[1].split()[:2] == ["PASS", "contract"] and out[2].split()[:2] == ["FAIL", "forward:torch"]
    assert out[-1] == "2 checks: 1 passed, 1 failed, 0 skipped"
    assert main(["check", "kitfault-ok", "--only", "forward", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and [r["check"] for r in report["results"]] == ["forward:torch", "forward:jax"]
    assert main(["check", "kitfault-ok", "--only", "nope"]) == 2
    assert "unknown check" in capsys.readouterr().err


def test_check_covers_every_preset_of_the_entry():
    report = run("kitfault-two", only=["contract", "params"])
    results = {r.check: r for r in report.results}
    assert set(results) == {"contract", "params", "contract@kitfault-two-big", "params@kitfault-two-big"}
    assert results["contract"].status == "pass"
    bad = results["contract@kitfault-two-big"]
    assert bad.status == "fail" and "num_classes=0" in bad.detail and not report.ok
    assert "contract, params on its 1 other preset(s)" in report.text().splitlines()[0]
    one = run("kitfault-two", preset="kitfault-two-tiny", only=["contract"])  # --preset: that one only
    assert [r.check for r in one.results] == ["contract"] and one.ok
