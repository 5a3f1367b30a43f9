"""The GPU and TPU suites (suites/gpu-paper.yaml, tpu-paper.yaml, gpu-validate.yaml): they plan
cleanly, cover what their comments say, and their first line is the estimator's current figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from architectures import registry
from bench import cli, suite_file
from bench.doctor import estimate

REPO = Path(__file__).resolve().parents[1]
HEADER_DEVICES = {"gpu-paper.yaml": (estimate.H100,), "gpu-validate.yaml": (estimate.H100,),
                  "tpu-paper.yaml": (estimate.H100, "TPU v4", "TPU v5 lite")}
FAMILIES = {e.name for e in registry.entries()}  # shipped architectures only


@pytest.mark.parametrize("name", sorted(HEADER_DEVICES))
def test_suite_plans_cleanly_and_its_header_is_the_estimate(name, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the header names the suite by its path in the repository
    path = f"suites/{name}"
    assert cli.main(["plan", str(REPO / path)]) == 0
    assert "case(s)" in capsys.readouterr().out
    lines = (REPO / path).read_text().splitlines()
    assert lines[0] == estimate.header(path, HEADER_DEVICES[name]), "re-run: python -m bench.doctor.estimate"
    assert "ESTIMATE" in lines[0] and any(line.startswith("# What it measures:") for line in lines[:3])


def test_gpu_paper_covers_every_family_precision_and_switch():
    cases = suite_file.load(REPO / "suites/gpu-paper.yaml").cases
    assert {c.arch for c in cases} == FAMILIES
    assert all(c.device == "cuda" and {"sample_step", "train_step"} <= set(c.measure) for c in cases)
    for arch in FAMILIES:
        own = [c for c in cases if c.arch == arch]
        torch_eager = {c.precision for c in own if c.backend == "torch" and c.compile == "none"}
        assert torch_eager == {"fp32", "tf32", "bf16"}, arch
        assert any(c.compile == "default" and c.precision == "bf16" for c in own), arch
        assert {c.precision for c in own if c.backend == "jax"} == {"tf32", "bf16"}, arch
    flash = {c.arch for c in cases if c.attention == "flash"}
    assert flash == FAMILIES - {"unet3d"}  # its temporal attention takes a bias, which flash cannot
    assert all(c.precision in ("bf16", "fp16") for c in cases if c.attention == "flash")


def test_tpu_paper_is_jax_bf16_on_tpu_for_every_family():
    cases = suite_file.load(REPO / "suites/tpu-paper.yaml").cases
    assert {c.arch for c in cases} == FAMILIES
    assert {(c.backend, c.device, c.precision) for c in cases} == {("jax", "tpu", "bf16")}


def test_gpu_validate_is_short(monkeypatch):
    monkeypatch.chdir(REPO)
    seconds, n = estimate.suite_seconds("suites/gpu-validate.yaml")
    assert n <= 8 and seconds < 5 * 60  # the doctor's other checks and this fit in 8 minutes


def test_estimate_grows_with_the_work_and_says_it_is_one(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    base = suite_file.loads("cases: [{preset: dit-b-2, device: cuda, batch: 32, measure: [train_step]}]").cases[0]
    big = suite_file.loads("cases: [{preset: dit-xl-2, device: cuda, batch: 32, measure: [train_step]}]").cases[0]
    compiled = suite_file.loads("cases: [{preset: dit-b-2, device: cuda, batch: 32, measure: [train_step], "
                          "compile: default}]").cases[0]
    assert estimate.case_seconds(big) > estimate.case_seconds(base)
    assert estimate.case_seconds(compiled) == pytest.approx(estimate.case_seconds(base) + estimate.COMPILE_S["torch"])
    assert estimate.main(["suites/gpu-validate.yaml"]) == 0 and "not a measurement" in capsys.readouterr().out
    assert estimate.main(["suites/gpu-validate.yaml", "--device", "NVIDIA H100"]) == 2
    assert "not in the peak table" in capsys.readouterr().err
