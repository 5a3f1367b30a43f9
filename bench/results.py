"""Records -> pandas: one row per case, nested fields flattened with dots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import record_schema
from bench.records import RUN_FILE, RecordError, record_paths

RUN_COLUMNS = {  # run-level provenance joined onto every row
    "git.sha": ("provenance", "git", "sha"),
    "git.dirty": ("provenance", "git", "dirty"),
    "host.cpu_model": ("provenance", "host", "cpu_model"),
    "host.cpu_count": ("provenance", "host", "cpu_count"),
    "versions.torch": ("provenance", "versions", "torch"),
    "versions.jax": ("provenance", "versions", "jax"),
    "versions.flax": ("provenance", "versions", "flax"),
}


def _run_dirs(path: Path) -> list[Path]:
    """A run directory, or every run directory below a suite or results folder."""
    if (path / RUN_FILE).is_file():
        return [path]
    return sorted(p.parent for p in path.rglob(RUN_FILE))


def _record_files(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = []
    for path in map(Path, paths):
        if path.is_file() and path.name == RUN_FILE:  # a run's run.json stands for the run
            files += record_paths(path.parent)
        elif path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [f for run in _run_dirs(path) for f in record_paths(run)]
        else:
            raise FileNotFoundError(f"no results at {path}")
    return files


def _run_meta(run_dir: Path, cache: dict) -> dict:
    if run_dir not in cache:
        run_file = run_dir / RUN_FILE
        cache[run_dir] = record_schema.load_run(run_file) if run_file.is_file() else {}
    return cache[run_dir]


def dig(data, *keys):
    """data[k1][k2]... or None as soon as a level is missing or not a mapping."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def load_records(paths) -> list[dict]:
    """The records under `paths` in the current schema (older ones migrated, every one
    type-checked: bench.record_schema), each with `record_path` and `_run` (its run.json, or {}),
    in suite, run and case order. Two records of one case in one run directory are refused."""
    out, meta_cache, seen = [], {}, {}
    for path in _record_files(paths):
        record = record_schema.load(path)
        key = (str(Path(path).resolve().parent), record["case_id"])
        if key in seen and seen[key] != Path(path).resolve():
            raise RecordError(f"{seen[key]} and {path}: two records of case {record['case_id']!r} in one run; "
                              "allowed: one record per case (remove or move the one that does not belong)")
        seen[key] = Path(path).resolve()
        record["record_path"] = str(path)
        record["_run"] = _run_meta(path.parent, meta_cache)
        out.append(record)
    return sorted(out, key=lambda r: (str(r["suite"]), str(r["run_id"]), dig(r, "case", "index") or 0))


def load(paths) -> pd.DataFrame:
    """Records under `paths` (record files, run dirs, suite dirs or results/) as a DataFrame.

    Lists (raw timing samples) stay lists in their cell; `record_path` says where each row
    came from; run-level provenance (git sha, dirty flag) is joined in.
    """
    rows = []
    for record in load_records(paths):
        meta = record.pop("_run")
        for column, keys in RUN_COLUMNS.items():
            record[column] = dig(meta, *keys)
        rows.append(record)
    if not rows:
        return pd.DataFrame(columns=["case_id", "status"])
    frame = pd.json_normalize(rows, sep=".")
    return frame.sort_values(["suite", "run_id", "case.index"], kind="stable", ignore_index=True)
