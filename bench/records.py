"""Result records on disk: one JSON file per case, written atomically, plus run.json."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

RUN_FILE = "run.json"
SCHEMA = 1


class RecordError(ValueError):
    """A file read as a record that is not one; the message names the file."""


def write_json_atomic(path: Path, data: dict) -> None:
    """Temp file in the same directory + fsync + rename: a reader never sees half a record."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True, allow_nan=False, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def record_filename(index: int, case_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", case_id).strip("_")
    return f"{index:04d}-{slug}.json"


def record_paths(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob("*.json") if p.name != RUN_FILE)


def read_records(run_dir: Path) -> dict[str, dict]:
    """case_id -> record for every complete record in a run directory."""
    records = {}
    for path in record_paths(run_dir):
        record = json.loads(path.read_text())
        records[record["case_id"]] = record
    return records


def clean_partial(run_dir: Path) -> int:
    """Remove temp files left by a writer that was killed mid-write; returns how many."""
    stale = list(Path(run_dir).glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def non_finite_paths(value, prefix: str = "") -> list[str]:
    """Key paths of NaN/inf floats anywhere in a nested record."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [prefix or "<value>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{prefix}[{i}]")]
    return []
