"""Runs a suite: fresh subprocesses per case (one per round, bench/rounds.py), one atomically
written record per case.

A case that raises, returns NaN, dies by a signal or passes its timeout becomes a `failed` record
and the suite goes on. Records are written only by this (parent) process; resuming a run skips
the cases it already recorded, so a runner killed at any point loses at most the case in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import shutil

from bench import provenance, rounds
from bench.backends.threads import resolve_threads, thread_env
from bench.child_process import CODE_ROOT, python_child
from bench.progress import Progress
from bench.records import (RUN_FILE, SCHEMA, clean_partial, naming, record_filename, scan_records, stray_paths,
                           write_json_atomic)
from bench.rundir import LockedError, RssWatch, RunLock, cgroup_memory_events, oom_kills, sigkill_message

LOG_DIR = "logs"
CASES_DIR = ".cases"  # per-case scratch (job and result files), removed on resume
STDERR_TAIL = 4000


class RunError(RuntimeError):
    """A run that cannot start or resume; the message says why and what to do."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: finished records are kept; the message says how to resume."""

    def __init__(self, run_dir: Path, suite_path: str, done: int, total: int):
        self.run_dir, self.suite_path, self.done, self.total = run_dir, suite_path, done, total
        super().__init__(f"interrupted; {done} of {total} case(s) recorded in {run_dir}; "
                         f"resume with `diffbench run {suite_path} --resume {run_dir}`")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_dir(results_root: Path, suite_name: str) -> Path:
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    run_dir = Path(results_root) / suite_name / run_id
    (run_dir / LOG_DIR).mkdir(parents=True)
    return run_dir


def start_run(suite, results_root: Path, lock_stack=None) -> tuple[Path, dict]:
    run_dir = new_run_dir(results_root, suite.name)
    if lock_stack is not None:
        lock_stack.enter_context(RunLock(run_dir))
    meta = {
        "schema": SCHEMA,
        "run_id": run_dir.name,
        "suite": suite.name,
        "suite_path": str(suite.path),
        "suite_sha256": suite.content_sha256,
        "cases": len(suite.cases),
        "executor": "local",
        "code_root": str(CODE_ROOT),
        "started": now(),
        "ended": None,
        "resumes": [],
        "provenance": provenance.collect(),
    }
    write_json_atomic(run_dir / RUN_FILE, meta)
    return run_dir, meta


def reopen_run(suite, run_dir: Path, lock_stack=None) -> dict:
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.is_file():
        raise RunError(f"--resume {run_dir}: no {RUN_FILE} there; pass a directory made by `diffbench run`")
    if lock_stack is not None:
        try:
            lock_stack.enter_context(RunLock(run_dir))
        except LockedError as exc:
            raise RunError(f"--resume {exc}") from None
    try:
        meta = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"--resume {run_dir}: cannot read its {RUN_FILE}: {exc}; start a new run instead") from None
    if (not isinstance(meta, dict) or not isinstance(meta.get("resumes"), list)
            or not isinstance(meta.get("run_id"), str)):
        raise RunError(f"--resume {run_dir}: its {RUN_FILE} is not one `diffbench run` wrote (no run_id/resumes); "
                       "start a new run instead")
    from bench import record_schema

    record_schema.version(meta, run_file, "run file")  # a newer diffbench's run: refused, one line
    record_schema.migrate(meta)  # an older one is rewritten in the current schema
    if meta.get("suite") != suite.name:
        raise RunError(f"--resume {run_dir}: that run is of suite {str(meta.get('suite'))[:64]!r}, not "
                       f"{suite.name!r} ({suite.path}); pass that suite's run directory")
    if meta.get("suite_sha256") != suite.content_sha256:
        raise RunError(
            f"--resume {run_dir}: the suite file {suite.path} changed since the run started "
            f"(sha256 {suite.content_sha256[:12]} now, {str(meta.get('suite_sha256'))[:12]} then); "
            "start a new run instead")
    clean_partial(run_dir)
    shutil.rmtree(Path(run_dir) / CASES_DIR, ignore_errors=True)  # scratch of a runner that was killed
    (Path(run_dir) / LOG_DIR).mkdir(exist_ok=True)
    meta["resumes"].append({"at": now(), "provenance": provenance.collect()})
    meta["ended"] = None
    write_json_atomic(run_file, meta)
    return meta


EXECUTORS = ("local", "ray")


def run_suite(suite, results_root: Path = Path("results"), resume: Path | None = None,
              show_progress: bool | None = None, executor: str = "local", address: str | None = None) -> Path:
    """Runs every case not yet recorded; returns the run directory. The run directory is locked
    for the whole run; SIGTERM is handled like Ctrl-C (finished records kept, `Interrupted`).
    executor "ray" runs each case as a Ray task (bench/ray_executor.py); records are the same."""
    if executor not in EXECUTORS:
        raise RunError(f"--executor {executor!r}: unknown executor; allowed: {', '.join(EXECUTORS)}")
    cluster = None
    if executor == "ray":
        from bench import ray_executor

        cluster = ray_executor.Cluster.connect(address, suite.cases)  # errors before a run dir exists
    with contextlib.ExitStack() as stack:
        if resume is None:
            run_dir, meta = start_run(suite, results_root, stack)
        else:
            run_dir, meta = Path(resume), reopen_run(suite, resume, stack)
        done = _recorded(run_dir, resume is not None)
        todo = [case for case in suite.cases if case.id not in done]
        partial = rounds.load_partial(run_dir, todo)  # case id -> its finished rounds (a resumed run's)
        if cluster is not None:
            meta.update(executor="ray", cluster=cluster.describe())
            write_json_atomic(run_dir / RUN_FILE, meta)
        previous = _on_sigterm(_raise_interrupt)
        recorded = [len(done)]

        try:
            with Progress(total=len(suite.cases), done=len(done), enabled=show_progress) as bar:
                def write(job, record, log: bytes | None = None):
                    """A finished round: kept while the case has rounds left, else merged into its record."""
                    if log is not None:
                        with naming(run_dir / record["worker"]["log"]):
                            (run_dir / record["worker"]["log"]).write_bytes(log)
                    merged = rounds.finish(run_dir, partial, job, record)
                    if merged is None:
                        bar.round_done(job.label, record["status"])
                    else:
                        recorded[0] += 1
                        bar.finish(job.case.id, merged["status"], merged.get("error"))

                for wave in rounds.waves(todo, partial):  # round 1 of every case, then round 2, ...
                    if cluster is None:
                        for job in wave:
                            bar.start(job.label)
                            write(job, execute_case(job.case, suite, run_dir, meta["run_id"], job))
                    else:
                        cluster.run(wave, suite, meta["run_id"], write, bar)
        except KeyboardInterrupt:
            raise Interrupted(run_dir, suite.path, recorded[0], len(suite.cases)) from None
        finally:
            _on_sigterm(previous)
        meta["ended"] = now()
        meta["cpu_peaks"] = {**(meta.get("cpu_peaks") or {}),  # a resumed run keeps its earlier sessions' peaks
                             **{str(k): v for k, v in sorted(_CPU_PEAKS.items())}}
        write_json_atomic(run_dir / RUN_FILE, meta)
    return run_dir


def _on_sigterm(handler):
    """Install a SIGTERM handler (main thread only); returns the previous one."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _recorded(run_dir: Path, resuming: bool) -> dict:
    """Records already in the run dir. Files that are not records are listed and left alone; a
    damaged record is renamed *.damaged (its case runs again), and both are reported on stderr."""
    done, damaged = scan_records(run_dir)
    if resuming:
        strays = [p.name for p in stray_paths(run_dir) if not p.name.endswith(".damaged")]
        if strays:
            print(f"diffbench: {run_dir}: not records, left alone: {', '.join(strays[:20])}", file=sys.stderr)
    for path, why in damaged:
        path.rename(path.with_name(path.name + ".damaged"))
        print(f"diffbench: {why}; renamed to {path.name}.damaged, its case runs again", file=sys.stderr)
    return done


_CPU_PEAKS: dict[int, dict] = {}  # threads -> the matmul microbenchmark, measured once per run and host


def cpu_peaks(case) -> dict | None:
    """This machine's CPU matmul throughput at the case's thread count (the CPU MFU reference),
    measured in a fresh process the first time a thread count is seen; None off CPU or on failure."""
    if not case.device.startswith(("cpu", "auto")):
        return None
    threads = resolve_threads(case.threads, case.cpus)
    if threads not in _CPU_PEAKS:
        cmd, env = python_child("bench.measure.cpu_peak", str(threads), env={**os.environ, **thread_env(threads)})
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            _CPU_PEAKS[threads] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            _CPU_PEAKS[threads] = {"error": str(exc)}
    peak = _CPU_PEAKS[threads]
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
