"""The doctor's checks that run in child processes: the jax step, tests/test_cuda.py, and the
gpu-validate suite with its report written to reports/example/gpu/<device>/."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from bench.doctor.result import Result

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    from bench.child_process import child_env

    return child_env({**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})


def jax_step(device: str, timeout_s: float = 300) -> Result:
    spec = {"cuda": "cuda"}.get(device.split(":")[0], device)
    try:
        from bench.child_process import python_child

        cmd, env = python_child("bench.doctor.jax_step", spec, env={**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Result("jax bf16 training step", False, f"did not finish in {timeout_s:g} s")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Result("jax bf16 training step", False, f"failed (exit {proc.returncode}): {tail}")
    out = json.loads(lines[-1])
    return Result(out["name"], {"ok": True, "FAIL": False}.get(out["status"]), out["summary"], out["detail"])


def pytest_cuda(timeout_s: float = 300) -> Result:
    """tests/test_cuda.py in a child process; skipped tests count as a failure on a GPU machine."""
    tests = REPO / "tests" / "test_cuda.py"
    if not tests.is_file():
        return Result("pytest tests/test_cuda.py", None, "skipped: not a source checkout (no tests/ folder)")
    try:
        from bench.child_process import python_child

        cmd, env = python_child("pytest", str(tests), "-ra", "-p", "no:cacheprovider", env=_env())
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Result("pytest tests/test_cuda.py", False, f"did not finish in {timeout_s:g} s")
    counts = [line.strip("= ") for line in proc.stdout.splitlines()
              if re.search(r"\d+ (passed|failed|skipped|errors?)\b", line) and " in " in line]
    last = counts[-1] if counts else (proc.stdout.strip().splitlines() or ["no output"])[-1]
    ok = proc.returncode == 0 and "skipped" not in last
    return Result("pytest tests/test_cuda.py", ok, last, {"output_tail": proc.stdout[-3000:]})


def validate_suite(device_slug: str, results: Path, reports: Path, suite_path: Path | None = None) -> Result:
    """gpu-validate through the runner (one process per case); its report under reports/<device_slug>/."""
    from bench import runner, suite_file
    from bench.records import read_records
    from bench.report import build

    suite = suite_file.load(suite_path or REPO / "suites" / "gpu-validate.yaml")
    run_dir = runner.run_suite(suite, results_root=results, show_progress=False)
    records = list(read_records(run_dir).values())
    failed = [r["case_id"] for r in records if r["status"] != "ok"]
    out_dir = reports / device_slug
    written = build.write([run_dir], out_dir)
    report = next((str(p) for p in written if p.suffix == ".md"), str(out_dir))
    detail = {"run_dir": str(run_dir), "report": report, "failed": failed, "cases": len(records)}
    return Result(f"suite {suite.name}", not failed,
                  f"{len(records) - len(failed)}/{len(records)} cases ok; report {report}", detail)
