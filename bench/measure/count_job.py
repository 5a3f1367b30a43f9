"""The job a counter process runs, and the parent side that starts it.

A counter is a module with `count(job) -> dict`, run as `python -m <module> '<job json>'` so
that each counter (fvcore, FlopCounterMode, XLA) has a process of its own: two profilers that
patch or intercept torch in one process corrupt each other. The child prints one JSON object;
any failure (exception, crash, timeout) becomes {"error": ...} in the parent, never a drop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field

from bench.child_process import die_with_parent, python_child


@dataclass(frozen=True)
class CountJob:
    arch: str
    preset: str
    overrides: dict = field(default_factory=dict)
    batch: int = 1
    seed: int = 0
    plugins: tuple = ()  # registry plugin modules (tests register architectures this way)
    train: bool = True  # also count one training step (forward + backward)
    compile: bool = True  # jax: compile the forward for XLA's post-optimization count (else lowered only)
    levels: int = 0  # > 0: a nest's innermost `levels` U-Nets alone (a stage, bench.training.stages)


def resolve(job: CountJob):
    """(registry entry, config with the job's overrides)."""
    from architectures import plugins, registry
    from bench.overrides import apply_overrides, dotted

    plugins.load_plugins(tuple(job.plugins))
    entry = registry.get(job.arch)
    config = entry.preset(job.preset).config
    if job.overrides:
        config = apply_overrides(config, job.overrides, f"{job.arch}/{job.preset}", dotted("override"))[0]
    if job.levels:
        from bench.training.stage_spec import stage_config

        config = stage_config(config, job.levels)
    return entry, config


def guarded(fn) -> dict:
    """fn()'s dict, or {"error": ...}: a failing training-step count keeps the forward count."""
    try:
        return fn()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def child_main(count) -> None:
    """Entry point of a counter module: argv[1] is the job's JSON; prints the result's JSON."""
    die_with_parent()
    started = time.perf_counter()
    try:
        result = count(CountJob(**json.loads(sys.argv[1])))
    except Exception as exc:  # reported to the parent as data
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
    result["seconds"] = time.perf_counter() - started
    sys.stdout.write("\n" + json.dumps(result) + "\n")


def run_counter(module: str, job: CountJob, timeout_s: float = 300.0) -> dict:
    """Run one counter module in a fresh process; {"error": ...} on any failure."""
    cmd, env = python_child(module, json.dumps(asdict(job)))
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"{module}: timed out after {timeout_s:.0f} s", "seconds": time.perf_counter() - started}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"{module}: exit code {proc.returncode}: {' | '.join(tail)}",
                "seconds": time.perf_counter() - started}
    return json.loads(lines[-1])
