"""Result records on disk: one JSON file per case, written atomically, plus run.json."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

RUN_FILE = "run.json"
ROUNDS_DIR = "rounds"  # finished rounds of cases that have rounds left (bench/rounds.py)
SCHEMA = 2  # the record and run.json schema (docs/records.md); bench.record_schema migrates older ones
RECORD_NAME = re.compile(r"[0-9]{4,}-[A-Za-z0-9_.-]+\.json")  # what record_filename writes
MAX_SLUG = 150  # file names stay well under NAME_MAX (255 bytes)


class RecordError(ValueError):
    """A file read as a record that is not one; the message names the file."""


@contextmanager
def naming(path):
    """An OSError raised while writing `path` names it: a full disk's ENOSPC comes from write(),
    flush() or fsync() with no file name, and the user must learn which file it was."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def write_text(path, text: str) -> None:
    """A text file (UTF-8) whose write errors name it."""
    with naming(path):
        Path(path).write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: dict) -> None:
    """Temp file in the same directory + fsync + rename: a reader never sees half a record."""
    path = Path(path)
    with naming(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; records are as readable as the logs
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True, allow_nan=False, default=_jsonable)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def file_sha256(path) -> str:
    """sha256 of a file, read in 1 MiB blocks (weights files are large). `path` may also be an
    open binary file, hashed from its position to its end (so the caller reads the bytes it hashed)."""
    if hasattr(path, "read"):
        return _sha256_stream(path)
    with open(path, "rb") as f:
        return _sha256_stream(f)


def _sha256_stream(f) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def record_filename(index: int, case_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", case_id, flags=re.ASCII).strip("_") or "case"
    if len(slug) > MAX_SLUG:  # long plugin/preset names: keep the name unique and short
        slug = slug[:MAX_SLUG - 9] + "-" + hashlib.sha256(case_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{index:04d}-{slug}.json"


def record_paths(run_dir: Path) -> list[Path]:
    """The record files of a run directory: regular files named as record_filename names them."""
    return sorted(p for p in Path(run_dir).glob("*.json") if RECORD_NAME.fullmatch(p.name) and p.is_file())


def stray_paths(run_dir: Path) -> list[Path]:
    """Entries of a run directory that are neither records, run.json, logs nor our temp files."""
    known = {RUN_FILE, "logs", ".lock", ".cases", ROUNDS_DIR}
    records = set(record_paths(run_dir))
    return sorted(p for p in Path(run_dir).iterdir()
                  if p.name not in known and p not in records and not p.name.endswith(".tmp"))


def read_record(path: Path) -> dict:
    """One record file, or a RecordError naming the file and what is wrong with it."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{path}: damaged record: {type(exc).__name__}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("case_id"), str):
        raise RecordError(f"{path}: damaged record: not a JSON object with a 'case_id'")
    return record


def scan_records(run_dir: Path) -> tuple[dict[str, dict], list[tuple[Path, str]]]:
    """(case_id -> record, [(damaged file, why), ...]) for a run directory."""
    records, damaged = {}, []
    for path in record_paths(run_dir):
        try:
            record = read_record(path)
        except RecordError as exc:
            damaged.append((path, str(exc)))
            continue
        records[record["case_id"]] = record
    return records, damaged


def read_records(run_dir: Path) -> dict[str, dict]:
    """case_id -> record for every complete record in a run directory (damaged ones left out)."""
    return scan_records(run_dir)[0]


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
