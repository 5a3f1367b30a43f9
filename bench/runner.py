"""Runs a suite: fresh subprocesses per case (one per round, bench/rounds.py), one atomically
written record per case.

A case that raises, returns NaN, dies by a signal or passes its timeout becomes a `failed` record
and the suite goes on. Records are written only by this (parent) process; resuming a run skips
the cases it already recorded, so a runner killed at any point loses at most the case in flight.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import shutil

from bench import provenance, rounds
from bench.case_process import CASES_DIR, CPU_PEAKS, LOG_DIR, execute_case, now
from bench.child_process import CODE_ROOT
from bench.progress import Progress
from bench.records import RUN_FILE, SCHEMA, clean_partial, naming, scan_records, stray_paths, write_json_atomic
from bench.rundir import LockedError, RunError, RunLock


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: finished records are kept; the message says how to resume."""

    def __init__(self, run_dir: Path, suite_path: str, done: int, total: int):
        self.run_dir, self.suite_path, self.done, self.total = run_dir, suite_path, done, total
        super().__init__(f"interrupted; {done} of {total} case(s) recorded in {run_dir}; "
                         f"resume with `diffbench run {suite_path} --resume {run_dir}`")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


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
                             **{str(k): v for k, v in sorted(CPU_PEAKS.items())}}
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
