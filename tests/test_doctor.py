"""`diffbench doctor` / `make gpu-check` (bench/doctor): what a CPU can test. The no-CUDA message,
each check's logic on the CPU (and that it can fail), the child-process plumbing, and a whole
doctor run on the CPU-testable checks. The GPU run itself happens where a GPU is lent."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

import tests.precision_arch  # noqa: F401  (registers precision-tiny)
from bench import cli
from bench.backends.torch_adapter import precision as torch_precision
from bench.doctor import jax_step, main, numerics, speed, suite
from bench.doctor.result import slug

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_no_cuda_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["doctor", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no CUDA device here" in err and "--device cpu" in err
    assert cli.main(["doctor", "--device", "cpu", "--skip", "flags,nope"]) == 2
    assert "unknown check(s)" in capsys.readouterr().err


def test_make_gpu_check_runs_the_doctor_on_cuda():
    make = (REPO / "Makefile").read_text()
    assert "\ngpu-check: .venv/installed\n\t.venv/bin/diffbench doctor --device cuda\n" in make


def test_flags_check_passes_and_catches_a_policy_that_sets_nothing(monkeypatch):
    ok = numerics.check_flags(CPU)
    assert ok.ok and set(ok.detail) == {"fp32", "bf16"} and all(r["restored"] for r in ok.detail.values())
    monkeypatch.setattr(torch_precision, "backend_flags", lambda tf32, benchmark: contextlib.nullcontext())
    assert numerics.check_flags(CPU).ok is False


def test_layer_errors_pass_and_catch_a_precision_that_was_not_applied(monkeypatch):
    ok = numerics.check_layer_errors(CPU)
    assert ok.ok, ok.summary
    bf16 = ok.detail["bf16"]["errors"]
    assert set(bf16) == {"conv3x3", "linear"} and set(bf16["linear"]) == {"forward", "grad_input", "grad_weight"}
    monkeypatch.setattr(torch_precision, "DTYPES", {})  # "bf16" without autocast: float32 numbers
    bad = numerics.check_layer_errors(CPU)
    assert bad.ok is False and "bf16" in bad.summary and "OUT OF BOUNDS" in bad.summary


@pytest.mark.parametrize("rates,ok", [
    ({"fp32": 50.0, "tf32": 380.0, "bf16": 750.0}, True),
    ({"fp32": 50.0, "tf32": 380.0, "bf16": 1200.0}, False),  # above the H100's 989: the wrong row
    ({"fp32": 50.0, "tf32": 52.0, "bf16": 750.0}, False),  # tf32 no faster than fp32: TF32 was off
])
def test_matmul_check_judges_rates_against_the_peak_table(monkeypatch, rates, ok):
    monkeypatch.setattr(speed, "precisions", lambda d: list(rates))
    monkeypatch.setattr(speed, "device_name", lambda d: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(speed, "matmul_tflops", lambda d, p: rates[p])
    result = speed.check_matmul(torch.device("cuda"))
    assert result.ok is ok and result.detail["bf16"]["peak_row"] == "H100 SXM5"
    monkeypatch.setattr(speed, "device_name", lambda d: "NVIDIA H100")  # not an exact name
    assert speed.check_matmul(torch.device("cuda")).ok is None


def test_matmul_and_timer_measure_on_cpu():
    m = speed.check_matmul(CPU)
    assert m.ok is None and all(m.detail[p]["tflop_per_s"] > 0 for p in ("fp32", "bf16"))
    t = speed.check_timer(CPU, model=("precision-tiny", 2, "fp32"), rounds=1, reps=3)
    assert t.ok is None and t.detail["harness_over_bare"] > 0 and t.detail["bare_method"] == "wall clock"


def test_jax_step_check_on_cpu(monkeypatch):
    monkeypatch.setitem(jax_step.MODEL, "cpu", ("precision-tiny", 2))
    out = jax_step.run("cpu")
    assert out["status"] == "ok", out["summary"]
    d = out["detail"]
    assert d["params_usable_after_donation"] and d["params_updated"] and d["sample_step_after_training_finite"]


def test_jax_step_child_reports_a_missing_device_as_a_failed_check():
    result = suite.jax_step("tpu", timeout_s=300)
    assert result.ok is False and "jax sees no tpu device" in result.summary


def test_pytest_check_counts_skips_as_failure():
    result = suite.pytest_cuda() if not torch.cuda.is_available() else pytest.skip("CUDA here: tests run")
    assert result.ok is False and "skipped" in result.summary


def test_validate_suite_writes_its_report_under_the_device(tmp_path, monkeypatch):
    from bench import case_process

    monkeypatch.setattr(case_process, "cpu_peaks", lambda case: None)  # no CPU reference needed here (saves ~20 s)
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny-validate\nplugins: [tests.precision_arch]\n"
                    "cases: [{preset: precision-tiny, batch: 2, threads: 1, measure: [sample_step], timeout: 120}]\n")
    result = suite.validate_suite(slug("Test CPU 1"), tmp_path / "results", tmp_path / "reports", path)
    assert result.ok, result.detail
    assert Path(result.detail["report"]).parent == tmp_path / "reports" / "test-cpu-1"
    assert Path(result.detail["report"]).is_file()


def test_a_cpu_doctor_run_writes_its_details(tmp_path):
    lines = []
    rc = main.run("cpu", skip=("matmul", "timer", "jax"), out=str(tmp_path), echo=lines.append)
    assert rc == 0, lines
    data = json.loads((tmp_path / "doctor.json").read_text())
    status = {c["name"]: c["status"] for c in data["checks"]}
    assert status == {"precision flags": "ok", "conv+linear fwd/bwd error vs float64": "ok",
                      "pytest tests/test_cuda.py": "info", "suite gpu-validate": "info"}
    assert any("needs a CUDA device" in line for line in lines) and "none failed" in lines[-2]


def test_a_crashing_check_fails_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(numerics, "check_flags", lambda d: 1 / 0)
    lines = []
    assert main.run("cpu", skip=("numerics", "matmul", "timer", "jax"), out=str(tmp_path), echo=lines.append) == 1
    assert any(line.startswith("FAIL  precision flags: crashed: ZeroDivisionError") for line in lines)
    assert "FAILED: precision flags" in lines[-2]
