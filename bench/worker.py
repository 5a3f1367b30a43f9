"""Runs one case in its own process: `python -m bench.worker JOB.json RESULT.json`.

The parent (bench.runner) sets the thread environment before this process starts, so torch and
XLA read it at import. This process writes its measurements (or the error) to RESULT.json; the
parent turns that into the case's record. Anything this process cannot report itself (a signal,
a hang, an interpreter crash) the parent records from the outside.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

from bench.child_process import die_with_parent
from bench.records import non_finite_paths, write_json_atomic


def run_job(job: dict) -> dict:
    from architectures import plugins, registry
    from bench import suite_file

    from bench.measure.case_measurements import pin_threads

    case = suite_file.Case.from_dict(job["case"])
    pin_threads(case)  # before plugins: a plugin may import torch or jax at its top level
    names = plugins.load_plugins(job.get("plugins", ()))
    os.environ[registry.PLUGINS_ENV] = ",".join(names)  # the case's own subprocesses (FLOP counters) need them too
    config = suite_file.resolve_config(case)
    result = {"config": dataclasses.asdict(config)}

    from bench.measure import run_case

    result.update(run_case(case, job.get("cpu_peaks"), job.get("run_dir"), artifacts=job.get("artifacts"),
                           only=job.get("only")))
    return result


def main(argv: list[str]) -> int:
    die_with_parent()
    job_path, result_path = Path(argv[0]), Path(argv[1])
    started = time.time()
    try:
        result = run_job(json.loads(job_path.read_text()))
        bad = non_finite_paths(result)
        result["status"] = "failed" if bad else "ok"
        if bad:  # keep the measurements, with the non-finite ones as null
            result["error"] = {"type": "NonFinite", "message": f"non-finite value(s) at {', '.join(bad[:5])}"}
    except Exception as exc:  # a failing case is data: the error goes into its record
        result = {"status": "failed", "error": _error(exc)}
    result["worker_s"] = time.time() - started
    write_json_atomic(result_path, _finite_or_null(result))
    return 0


def _error(exc: BaseException) -> dict:
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": traceback.format_exc(limit=20),
    }


def _finite_or_null(value):
    """JSON has no NaN: a failed record keeps its other fields with NaNs as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
