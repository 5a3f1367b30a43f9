"""Rounds: a case with timed steps runs in R fresh processes (its `rounds:` setting), interleaved
across the suite round by round (round 1 of every case, then round 2, ...), and the R processes'
outputs become one record.

Round 1 measures everything the case lists; rounds 2..R time only its timed steps (sample_step,
train_step), each in a process of its own. A finished round of a case that has rounds left is
kept in `rounds/<record stem>.round<k>.json` under the run directory, so a run killed mid-round
resumes where it stopped; the case's record is written (and its round files removed) after its
last round, or after the first round that fails. Docs: docs/measurement.md ("Rounds").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure.stats import bootstrap_median_ci, iqr, rel_iqr
from bench.records import ROUNDS_DIR, RecordError, read_record, record_filename, write_json_atomic

TIMED = ("sample_step", "train_step")  # the measurements a later round repeats
ROUND_KEYS = ("median_ms", "ci95_ms", "samples_ms", "reps", "stop_reason", "iqr_ms", "rel_iqr", "compile_s",
              "cpu_median_ms", "cpu_samples_ms", "wall_over_cpu", "contended", "cpus", "cpu_claim",
              "device_peak_bytes")


def planned(case) -> int:
    """Processes the case runs in: its `rounds` when it times a step, else one."""
    return case.rounds if set(TIMED) & set(case.measure) else 1


@dataclass(frozen=True)
class Job:
    """Round `round` (1-based) of a case planned for `rounds` rounds."""
    case: Any
    round: int
    rounds: int

    @property
    def only(self) -> list[str] | None:
        """The measurements this round runs: all of the case's (None) in round 1, else the timed ones."""
        return None if self.round == 1 else list(TIMED)

    @property
    def last(self) -> bool:
        return self.round >= self.rounds

    @property
    def label(self) -> str:
        return self.case.id if self.rounds == 1 else f"{self.case.id} (round {self.round}/{self.rounds})"


def waves(cases, partial: dict[str, list]):
    """Each round's jobs, computed as the round starts: a case still in `partial` (case id -> the
    records of its finished rounds) gets round k when it has k - 1 rounds done and k planned.
    The caller removes a case from `partial` once its record is written."""
    top = max((planned(c) for c in cases), default=0)
    for k in range(1, top + 1):
        jobs = [Job(c, k, planned(c)) for c in cases
                if c.id in partial and len(partial[c.id]) == k - 1 and k <= planned(c)]
        if jobs:
            yield jobs


def _stem(case) -> str:
    return record_filename(case.index, case.id)[:-5]


def round_path(run_dir: Path, case, k: int) -> Path:
    return Path(run_dir) / ROUNDS_DIR / f"{_stem(case)}.round{k}.json"


def save_round(run_dir: Path, job: Job, record: dict) -> None:
    (Path(run_dir) / ROUNDS_DIR).mkdir(exist_ok=True)
    write_json_atomic(round_path(run_dir, job.case, job.round), record)


def load_partial(run_dir: Path, cases) -> dict[str, list]:
    """case id -> the records of its finished rounds 1, 2, ... (kept by a run that was stopped);
    reading stops at the first missing, damaged or foreign round file, and later ones are removed."""
    partial = {}
    for case in cases:
        done, k = [], 1
        while round_path(run_dir, case, k).is_file():
            try:
                rec = read_record(round_path(run_dir, case, k))
            except RecordError:
                break
            if rec["case_id"] != case.id or rec.get("status") != "ok" or k >= planned(case):
                break
            done.append(rec)
            k += 1
        for stale in sorted((Path(run_dir) / ROUNDS_DIR).glob(f"{_stem(case)}.round*.json")):
            if stale.name not in {round_path(run_dir, case, i).name for i in range(1, len(done) + 1)}:
                stale.unlink(missing_ok=True)
        partial[case.id] = done
    return partial


def finish(run_dir: Path, partial: dict[str, list], job: Job, record: dict) -> dict | None:
    """A finished round: kept (None returned) while its case has rounds left and it did not fail,
    else merged with the case's earlier rounds into the case's record, which is written and returned."""
    earlier = partial[job.case.id]
    if not job.last and record.get("status") == "ok":
        save_round(run_dir, job, record)
        earlier.append(record)
        return None
    merged = merge([*earlier, record], job.rounds)
    write_json_atomic(Path(run_dir) / record_filename(job.case.index, job.case.id), merged)
    remove_rounds(run_dir, job.case, len(earlier))
    del partial[job.case.id]
    return merged


def remove_rounds(run_dir: Path, case, done: int) -> None:
    for k in range(1, done + 1):
        round_path(run_dir, case, k).unlink(missing_ok=True)
    folder = Path(run_dir) / ROUNDS_DIR
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def merge(results: list[dict], planned_rounds: int) -> dict:
    """One record from the records of a case's rounds, in round order: round 1's record with each
    timed step merged over the rounds (merge_step), the rounds' process outcomes under
    `worker.rounds`, and the first failed round's status and error."""
    record = dict(results[0])
    record["worker"] = {**results[0].get("worker", {}), "rounds": [
        {"round": k, "started": r.get("started"), "ended": r.get("ended"), "duration_s": r.get("duration_s"),
         **{key: v for key, v in (r.get("worker") or {}).items() if key != "rounds"}}
        for k, r in enumerate(results, 1)]}
    record.update(ended=results[-1].get("ended"), duration_s=sum(r.get("duration_s") or 0.0 for r in results),
                  rounds_planned=planned_rounds)
    if "worker_seconds" in record:
        record["worker_seconds"] = sum(r.get("worker_seconds") or 0.0 for r in results)
    for k, r in enumerate(results, 1):
        if r.get("status") != "ok":
            error = dict(r.get("error") or {})
            if k > 1:
                error["message"] = f"round {k} of {planned_rounds}: {error.get('message', '')}"
            record.update(status=r.get("status", "failed"), error=error)
            break
    timing = record.get("timing")
    if isinstance(timing, dict):
        batch = (record.get("case") or {}).get("batch") or 1
        record["timing"] = dict(timing)
        for step, first in timing.items():
            steps = [first] + [((r.get("timing") or {}).get(step)) for r in results[1:]]
            steps = [s for s in steps if isinstance(s, dict) and s.get("median_ms") is not None]
            if steps:
                record["timing"][step] = merge_step(steps, batch)
    return record


def round_entry(step: dict, k: int) -> dict:
    entry = {"round": k, **{key: step[key] for key in ROUND_KEYS if key in step}}
    device = step.get("device_time")
    if isinstance(device, dict):
        entry.update(device_median_ms=device.get("median_ms"), device_samples_ms=device.get("samples_ms"))
    return entry


def merge_step(steps: list[dict], batch: int) -> dict:
    """A timed step over its rounds: `median_ms` is the median of the round medians and `ci95_ms`
    its percentile bootstrap over rounds; `samples_ms` (and cpu_samples_ms) pool every round's raw
    samples, and iqr/mean/min/max describe the pooled samples; `rounds` keeps each round's own
    statistics. One round: round 1's statistics unchanged (a within-process CI)."""
    out = dict(steps[0])
    entries = [round_entry(s, k) for k, s in enumerate(steps, 1)]
    out["rounds"] = entries
    out["converged_rounds"] = sum(e.get("stop_reason") == "converged" for e in entries)
    if len(steps) == 1:
        return out
    medians = [e["median_ms"] for e in entries]
    med = float(np.median(medians))
    lo, hi = bootstrap_median_ci(medians)
    pooled = np.asarray([x for s in steps for x in s.get("samples_ms") or []], float)
    _rescale(out, steps[0]["median_ms"], med, (lo, hi))
    unconverged = [e["stop_reason"] for e in entries if e.get("stop_reason") != "converged"]
    out.update(median_ms=med, ci95_ms=[lo, hi], samples_ms=pooled.tolist(), reps=int(pooled.size),
               stop_reason=unconverged[0] if unconverged else "converged")
    if pooled.size:
        out.update(iqr_ms=iqr(pooled), rel_iqr=rel_iqr(pooled), mean_ms=float(pooled.mean()),
                   min_ms=float(pooled.min()), max_ms=float(pooled.max()))
    cpu = [e.get("cpu_median_ms") for e in entries]
    if all(c is not None for c in cpu):
        cpu_med = float(np.median(cpu))
        out.update(cpu_median_ms=cpu_med, cpu_samples_ms=[x for s in steps for x in s.get("cpu_samples_ms") or []],
                   wall_over_cpu=med / cpu_med if cpu_med > 0 else None,
                   contended=any(bool(e.get("contended")) for e in entries))
    device = [e.get("device_median_ms") for e in entries]
    if all(d is not None for d in device):
        dlo, dhi = bootstrap_median_ci(device)
        out["device_time"] = {**out["device_time"], "median_ms": float(np.median(device)), "ci95_ms": [dlo, dhi],
                              "samples_ms": [x for e in entries for x in e.get("device_samples_ms") or []]}
    return out


def _rescale(step: dict, old_ms: float, new_ms: float, ci_ms: tuple) -> None:
    """Rates derived from the step time (`*_per_s`, their `*_per_s_ci95`, `mfu`, here and under
    `utilization`) follow the new headline time: a rate is constant / time."""
    if not old_ms or not new_ms:
        return
    factor = old_ms / new_ms
    for d in (step, step.get("utilization")):
        if not isinstance(d, dict):
            continue
        if d is not step:
            d = step["utilization"] = dict(d)
        for key, value in list(d.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (key.endswith("_per_s") or key == "mfu"):
                d[key] = value * factor
        for key, value in list(d.items()):
            rate = d.get(key[:-len("_ci95")])
            if key.endswith("_per_s_ci95") and isinstance(rate, (int, float)) and ci_ms[0] > 0:
                d[key] = [rate * new_ms / ci_ms[1], rate * new_ms / ci_ms[0]]
