import json
from importlib.metadata import version

from architectures import registry
from bench import spec
from bench.cli import _only, main
from bench.measure.flops import analytic, nfe_per_sample
from bench.progress import Progress


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"diffbench {version('diffbench')}"


def test_describe_takes_a_preset_name(capsys):
    assert main(["describe", "adm-imagenet64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "unet2d" and "adm-imagenet64" in info["presets"]
    assert main(["describe", "no-such-thing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown architecture or preset 'no-such-thing'" in err[0]


def test_flops_finds_the_architecture_from_the_preset_and_analytic_only_counts(capsys):
    assert main(["flops", "--preset", "rin-tiny", "--analytic-only", "--batch", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    entry = registry.find_preset("rin-tiny")
    config = entry.preset("rin-tiny").config
    macs = analytic(entry, config, 3)["macs"]
    assert r["arch"] == "rin" and r["gflops"] == 2 * macs / 1e9
    assert r["gflops_per_image"] == r["gflops"] / 3
    assert r["gflops_per_sample"] == nfe_per_sample(config, entry.process) * r["gflops_per_image"]
    assert main(["flops", "--preset", "unet2d-tiny", "--analytic-only"]) == 0
    assert "unet2d / unet2d-tiny" in capsys.readouterr().out


def test_run_only_keeps_the_matching_cases_and_rejects_a_pattern_matching_none(tmp_path, capsys):
    suite = spec.load("suites/smoke.yaml")
    assert [c.id for c in _only(suite, "unet2d").cases] == [c.id for c in suite.cases if "unet2d" in c.id]
    assert [c.index for c in _only(suite, "*/jax/*").cases] == [c.index for c in suite.cases if c.backend == "jax"]
    assert main(["run", "suites/smoke.yaml", "--only", "nonet*", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--only 'nonet*': matches none of the {len(suite.cases)} case(s)" in err[0]
    assert not any(tmp_path.iterdir())


def test_one_line_per_finished_case_when_not_a_tty(capsys):
    with Progress(total=2) as bar:  # pytest's stderr is not a TTY
        for case, status in (("a/b/torch/cpu/b1", "ok"), ("c/d/jax/cpu/b1", "failed")):
            bar.start(case)
            bar.finish(case, status)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["[1/2] ok     a/b/torch/cpu/b1", "[2/2] failed c/d/jax/cpu/b1"]
    with Progress(total=1, enabled=False) as bar:  # --quiet
        bar.finish("x", "ok")
    assert capsys.readouterr().err == ""


ONLY_SUITE = """
name: only
plugins: [tests.fault_arch]
defaults: {backend: torch, device: cpu, measure: [params], threads: 1}
cases:
  - preset: fault-ok-tiny
    matrix: {batch: [1, 2, 3]}
"""


def test_run_only_with_report_logs_one_line_per_case_off_a_tty(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    suite = tmp_path / "only.yaml"
    suite.write_text(ONLY_SUITE)
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(suite), "--only", "*/b2/*",
                           "--results", str(tmp_path / "results"), "--report", "--reports", str(tmp_path / "reports")],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split(" (")[0] for line in proc.stderr.strip().splitlines()] == ["[1/1] ok     fault-ok/fault-ok-tiny/torch/cpu/b2/t1"]
    (run_dir,) = (tmp_path / "results" / "only").iterdir()
    assert len(records_of(run_dir)) == 1
    report = (tmp_path / "reports" / "only" / run_dir.name / "report.md").read_text()
    assert "| fault-ok | fault-ok-tiny | torch | cpu |" in report


def records_of(run_dir):
    from bench.records import read_records

    return read_records(run_dir)
