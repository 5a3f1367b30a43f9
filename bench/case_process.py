"""One case (one round of it) in a fresh process on this machine, and the record of that
process, whatever happens to it: the job file, the thread environment, the timeout, the log, and
the CPU matmul reference a CPU case's MFU is measured against. The local executor (bench/runner.py)
and the Ray executor's tasks (bench/ray_executor.py) both run cases through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import rounds
from bench.backends.threads import resolve_threads, thread_env
from bench.child_process import python_child
from bench.records import SCHEMA, record_filename
from bench.rundir import RssWatch, cgroup_memory_events, oom_kills, sigkill_message

LOG_DIR = "logs"
CASES_DIR = ".cases"  # per-case scratch (job and result files), removed on resume
STDERR_TAIL = 4000


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")



CPU_PEAKS: dict[int, dict] = {}  # threads -> the matmul microbenchmark, measured once per run and host


def cpu_peaks(case) -> dict | None:
    """This machine's CPU matmul throughput at the case's thread count (the CPU MFU reference),
    measured in a fresh process the first time a thread count is seen; None off CPU or on failure."""
    if not case.device.startswith(("cpu", "auto")):
        return None
    threads = resolve_threads(case.threads, case.cpus)
    if threads not in CPU_PEAKS:
        cmd, env = python_child("bench.measure.cpu_peak", str(threads), env={**os.environ, **thread_env(threads)})
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            CPU_PEAKS[threads] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            CPU_PEAKS[threads] = {"error": str(exc)}
    peak = CPU_PEAKS[threads]
    return None if "error" in peak else peak


def log_name(case, round: int = 1) -> str:
    """The log file of the case's round (1: its only or first process), relative to the run directory."""
    suffix = "" if round == 1 else f".round{round}"
    return f"{LOG_DIR}/{record_filename(case.index, case.id)[:-5]}{suffix}.log"


def execute_case(case, suite, run_dir: Path, run_id: str, job: rounds.Job | None = None) -> dict:
    """Runs one case (or one round of it) in a fresh process and returns the record of that
    process, whatever happens to it."""
    job = job or rounds.Job(case, 1, 1)
    log = log_name(case, job.round)
    return case_record(case, suite.name, tuple(suite.plugins), run_id, Path(run_dir) / CASES_DIR,
                       Path(run_dir) / log, log, {"executor": "local"}, run_dir=run_dir, only=job.only)


def case_record(case, suite_name: str, plugins: tuple, run_id: str, scratch: Path, log_path: Path,
                log_rel: str, node: dict, run_dir: Path | None = None, only: list | None = None) -> dict:
    """The record of one case run in a fresh process on this machine (either executor calls it):
    scratch holds the job/result files, log_path gets the process's output; run_dir (local
    executor) is where a train case writes its checkpoint; `only` limits the measurements (a later
    round: the timed steps)."""
    started, t0 = now(), time.monotonic()
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="case-", dir=scratch) as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        artifacts = log_path.parent.parent / "artifacts" / log_path.stem  # next to the run's logs
        job_path.write_text(json.dumps({"case": case.to_dict(), "plugins": list(plugins),
                                        "cpu_peaks": cpu_peaks(case), "artifacts": str(artifacts), "only": only,
                                        "run_dir": None if run_dir is None else str(Path(run_dir).resolve())}))
        outcome = _spawn(case, job_path, result_path, log_path)
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
    record = {
        "schema": SCHEMA,
        "suite": suite_name,
        "run_id": run_id,
        "case_id": case.id,
        "case": case.to_dict(),
        "started": started,
        "ended": now(),
        "duration_s": time.monotonic() - t0,
        "worker": {**outcome, "log": log_rel, "node": {"hostname": socket.gethostname(), **node}},
    }
    if result is None:
        record.update(status="failed", error=_outside_error(outcome, case, log_path))
    else:
        record.update(result)
    return record


def _spawn(case, job_path: Path, result_path: Path, log_path: Path) -> dict:
    threads = resolve_threads(case.threads, case.cpus)
    env = {**os.environ, **thread_env(threads)}
    env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {env['XLA_FLAGS']}".strip()
    cmd, env = python_child("bench.worker", str(job_path), str(result_path), env=env)  # a ./bench/ cannot run
    events = cgroup_memory_events()
    ooms_before = oom_kills(events)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL)  # a timeout kills the group
        try:
            with RssWatch(proc.pid) as rss:
                try:
                    returncode = proc.wait(timeout=case.timeout_s)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    returncode = proc.wait()
                    timed_out = True
        except BaseException:  # Ctrl-C / SIGTERM of the runner: the case's processes go too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    sig = signal.Signals(-returncode).name if returncode < 0 else None
    ooms_after = oom_kills(events)
    oom_delta = None if ooms_before is None or ooms_after is None else ooms_after - ooms_before
    return {"returncode": returncode, "signal": sig, "timed_out": timed_out, "threads": threads,
            "peak_rss_bytes": rss.peak, "oom_kills": oom_delta}


def _outside_error(outcome: dict, case, log_path: Path) -> dict:
    tail = log_path.read_text(errors="replace")[-STDERR_TAIL:] if log_path.is_file() else ""
    if outcome["timed_out"]:
        message = f"timed out after {case.timeout_s:g} s (the case's timeout); process killed"
        kind = "Timeout"
    elif outcome["signal"] == "SIGKILL":
        message = f"worker process died by signal SIGKILL: {sigkill_message(outcome['oom_kills'], outcome['peak_rss_bytes'])}"
        kind = "OutOfMemory" if outcome["oom_kills"] else "Signal"
    elif outcome["signal"]:
        message = f"worker process died by signal {outcome['signal']}"
        kind = "Signal"
    else:
        message = f"worker process exited with code {outcome['returncode']} without a result"
        kind = "WorkerExit"
    return {"type": kind, "message": message, "log_tail": tail}
