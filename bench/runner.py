"""Runs a suite: one fresh subprocess per case, one atomically written record per case.

A case that raises, returns NaN, dies by a signal or passes its timeout becomes a `failed` record
and the suite goes on. Records are written only by this (parent) process; resuming a run skips
the cases it already recorded, so a runner killed at any point loses at most the case in flight.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import provenance
from bench.backends.threads import resolve_threads, thread_env
from bench.child_process import child_env
from bench.progress import Progress
from bench.records import (RUN_FILE, SCHEMA, clean_partial, read_records, record_filename,
                           write_json_atomic)

LOG_DIR = "logs"
STDERR_TAIL = 4000


class RunError(RuntimeError):
    """A run that cannot start or resume; the message says why and what to do."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_dir(results_root: Path, suite_name: str) -> Path:
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    run_dir = Path(results_root) / suite_name / run_id
    (run_dir / LOG_DIR).mkdir(parents=True)
    return run_dir


def start_run(suite, results_root: Path) -> tuple[Path, dict]:
    run_dir = new_run_dir(results_root, suite.name)
    meta = {
        "schema": SCHEMA,
        "run_id": run_dir.name,
        "suite": suite.name,
        "suite_path": str(suite.path),
        "suite_sha256": suite.content_sha256,
        "cases": len(suite.cases),
        "executor": "local",
        "started": now(),
        "ended": None,
        "resumes": [],
        "provenance": provenance.collect(),
    }
    write_json_atomic(run_dir / RUN_FILE, meta)
    return run_dir, meta


def reopen_run(suite, run_dir: Path) -> dict:
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.is_file():
        raise RunError(f"--resume {run_dir}: no {RUN_FILE} there; pass a directory made by `diffbench run`")
    try:
        meta = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"--resume {run_dir}: cannot read its {RUN_FILE}: {exc}; start a new run instead") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("resumes"), list):
        raise RunError(f"--resume {run_dir}: its {RUN_FILE} is not one `diffbench run` wrote; start a new run instead")
    if meta.get("suite_sha256") != suite.content_sha256:
        raise RunError(
            f"--resume {run_dir}: the suite file {suite.path} changed since the run started "
            f"(sha256 {suite.content_sha256[:12]} now, {str(meta.get('suite_sha256'))[:12]} then); "
            "start a new run instead")
    clean_partial(run_dir)
    (Path(run_dir) / LOG_DIR).mkdir(exist_ok=True)
    meta["resumes"].append({"at": now(), "provenance": provenance.collect()})
    meta["ended"] = None
    write_json_atomic(run_file, meta)
    return meta


def run_suite(suite, results_root: Path = Path("results"), resume: Path | None = None,
              show_progress: bool | None = None) -> Path:
    """Runs every case not yet recorded; returns the run directory."""
    if resume is None:
        run_dir, meta = start_run(suite, results_root)
    else:
        run_dir, meta = Path(resume), reopen_run(suite, resume)
    done = read_records(run_dir)
    todo = [case for case in suite.cases if case.id not in done]
    with Progress(total=len(suite.cases), done=len(done), enabled=show_progress) as bar:
        for case in todo:
            bar.start(case.id)
            record = execute_case(case, suite, run_dir, meta["run_id"])
            write_json_atomic(run_dir / record_filename(case.index, case.id), record)
            bar.finish(case.id, record["status"])
    meta["ended"] = now()
    write_json_atomic(run_dir / RUN_FILE, meta)
    return run_dir


def execute_case(case, suite, run_dir: Path, run_id: str) -> dict:
    """Runs one case in a fresh process and returns its record, whatever happens to the process."""
    log_path = Path(run_dir) / LOG_DIR / (record_filename(case.index, case.id)[:-5] + ".log")
    started, t0 = now(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="diffbench-case-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        artifacts = Path(run_dir) / "artifacts" / record_filename(case.index, case.id)[:-5]
        job_path.write_text(json.dumps({"case": case.to_dict(), "plugins": list(suite.plugins),
                                        "artifacts": str(artifacts)}))
        outcome = _spawn(case, job_path, result_path, log_path)
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
    record = {
        "schema": SCHEMA,
        "suite": suite.name,
        "run_id": run_id,
        "case_id": case.id,
        "case": case.to_dict(),
        "started": started,
        "ended": now(),
        "duration_s": time.monotonic() - t0,
        "worker": {**outcome, "log": str(log_path.relative_to(run_dir))},
    }
    if result is None:
        record.update(status="failed", error=_outside_error(outcome, case, log_path))
    else:
        record.update(result)
    return record


def _spawn(case, job_path: Path, result_path: Path, log_path: Path) -> dict:
    threads = resolve_threads(case.threads)
    env = {**os.environ, **thread_env(threads)}
    env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {env['XLA_FLAGS']}".strip()
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), os.environ.get("PYTHONPATH", "")] if p)
    cmd = [sys.executable, "-m", "bench.worker", str(job_path), str(result_path)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(env),
                                start_new_session=True, stdin=subprocess.DEVNULL)  # a timeout kills the group
        try:
            returncode = proc.wait(timeout=case.timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
            timed_out = True
    sig = signal.Signals(-returncode).name if returncode < 0 else None
    return {"returncode": returncode, "signal": sig, "timed_out": timed_out, "threads": threads}


def _outside_error(outcome: dict, case, log_path: Path) -> dict:
    tail = log_path.read_text(errors="replace")[-STDERR_TAIL:] if log_path.is_file() else ""
    if outcome["timed_out"]:
        message = f"timed out after {case.timeout_s:g} s (the case's timeout); process killed"
        kind = "Timeout"
    elif outcome["signal"]:
        message = f"worker process died by signal {outcome['signal']}"
        kind = "Signal"
    else:
        message = f"worker process exited with code {outcome['returncode']} without a result"
        kind = "WorkerExit"
    return {"type": kind, "message": message, "log_tail": tail}
