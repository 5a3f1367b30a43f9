import json
from importlib.metadata import version

import pytest

from architectures import registry
from bench import suite_file
from bench.cli import main
from bench.commands import _only
from bench.measure import torch_count
from bench.measure.count_job import CountJob
from bench.progress import Progress


def test_version_shows_the_git_sha_in_a_checkout(capsys):
    import subprocess

    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"diffbench {version('diffbench')} (git {sha[:10]}")


def test_list_has_a_header_aligned_columns_and_exits_1_when_nothing_matches(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["architecture", "modalities", "backends", "process", "presets"]
    starts = {line.index(line.split()[1]) for line in lines}  # the second column starts at one offset
    assert len(starts) == 1
    assert main(["list", "nope*"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no architecture or preset matches 'nope*'" in captured.err


def test_unknown_preset_suggests_the_near_miss_and_mentions_plugins(capsys):
    assert main(["describe", "rin-tinny"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'rin-tiny'?" in err and "--plugins MODULE" in err and "; allowed: " in err
    import pytest

    from bench.suite_file import SpecError
    with pytest.raises(SpecError, match=r"unknown preset 'unet2d-tyni' \(did you mean 'unet2d-tiny'\?\); a preset "
                                        r"from a plugin needs it in `plugins:`"):
        suite_file.loads("name: x\ncases:\n  - preset: unet2d-tyni\n")
    with pytest.raises(registry.RegistryError, match="did you mean 'unet2d'.*allowed: dit, "):
        registry.get("unet2")


def test_plugins_anywhere_on_the_command_line(capsys, monkeypatch, tmp_path):
    import sys

    from bench.cli import pull_plugins

    monkeypatch.setenv("DIFFBENCH_PLUGINS", "")
    assert pull_plugins(["run", "--plugins", "a.b", "suite.yaml", "--plugins=c,d", "--", "--plugins"]) == \
        (["run", "suite.yaml", "--", "--plugins"], ["a.b", "c,d"])
    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\ncases: [{preset: plugnet-tiny, backend: jax}]\n")
    try:
        assert main(["plan", "--plugins", "tests.plugin_arch", str(suite)]) == 0  # before the positional
        assert "plugnet/plugnet-tiny/jax" in capsys.readouterr().out
    finally:
        registry.unregister("plugnet")
        sys.modules.pop("tests.plugin_arch", None)
    assert main(["run", "--plugins"]) == 2
    assert "--plugins needs a value" in capsys.readouterr().err


def test_describe_takes_a_preset_name(capsys):
    assert main(["describe", "adm-imagenet64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "unet2d" and "adm-imagenet64" in info["presets"]
    assert main(["describe", "no-such-thing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown architecture or preset 'no-such-thing'" in err[0]


def test_flops_finds_the_architecture_from_the_preset_and_analytic_only_counts(capsys):
    """The CLI's analytic count against an independent trace of the same model at the same batch
    (torch's FlopCounterMode), and the per-sample cost against the preset's sampling steps."""
    assert main(["flops", "--preset", "rin-tiny", "--analytic-only", "--batch", "3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    traced = torch_count.count(CountJob("rin", "rin-tiny", batch=3, train=False))["forward"]["flops"]
    process = registry.get("rin").preset("rin-tiny").config.process
    assert r["arch"] == "rin" and r["gflop"] * 1e9 == pytest.approx(traced, rel=1e-6)
    assert r["gflop_per_image"] * 3 == pytest.approx(r["gflop"], rel=1e-12)
    assert process.guidance_scale == 0 and r["nfe_per_sample"] == process.sample_steps  # 1 NFE per step unguided
    assert r["gflop_per_sample"] == pytest.approx(process.sample_steps * r["gflop_per_image"], rel=1e-12)
    assert main(["flops", "--preset", "unet2d-tiny", "--analytic-only"]) == 0
    assert "unet2d / unet2d-tiny" in capsys.readouterr().out


def test_run_only_keeps_the_matching_cases_and_rejects_a_pattern_matching_none(tmp_path, capsys):
    suite = suite_file.load("suites/smoke.yaml")
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


def test_a_failed_case_line_carries_its_error_and_the_eta_comes_from_finished_cases(capsys, monkeypatch):
    with Progress(total=2) as bar:
        bar.finish("c/d/jax/cpu/b1", "failed", {"type": "DeviceError", "message": "device 'cuda' unavailable\ntrace"})
    line = capsys.readouterr().err.strip()
    assert line.endswith(": DeviceError: device 'cuda' unavailable") and "trace" not in line
    clock = iter([100.0, 160.0, 220.0])
    monkeypatch.setattr("bench.progress.time.monotonic", lambda: next(clock))
    bar = Progress(total=5, done=1, enabled=False)  # one case from an earlier run (--resume): not timed here
    assert bar.eta() == ""
    bar.done = 2  # one case finished in 60 s; three left
    assert bar.eta() == "ETA 3 min"


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


MIXED_SUITE = """
name: mixed
plugins: [tests.fault_arch]
defaults: {backend: torch, device: cpu, measure: [params], threads: 1, timeout: 60}
cases:
  - preset: fault-ok-tiny
  - preset: fault-raise-tiny
"""


def test_run_exits_1_when_a_case_failed_and_still_records_every_case(tmp_path, capsys):
    suite = tmp_path / "mixed.yaml"
    suite.write_text(MIXED_SUITE)
    assert main(["run", str(suite), "--results", str(tmp_path / "results"), "--quiet"]) == 1
    assert "2 case(s) recorded" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "results" / "mixed").iterdir()
    assert sorted(r["status"] for r in records_of(run_dir).values()) == ["failed", "ok"]


def test_test_tools_are_an_extra_not_runtime_dependencies():
    """pytest and hypothesis are the [test] extra; `make install` (and so `make test`) installs it."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0].lower()
    assert not {"pytest", "hypothesis"} & {name(r) for r in project["dependencies"]}
    assert {"pytest", "hypothesis"} <= {name(r) for r in project["optional-dependencies"]["test"]}
    assert '-e ".[ray,test]"' in (root / "Makefile").read_text()
