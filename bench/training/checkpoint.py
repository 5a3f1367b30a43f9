"""Checkpoints both backends read: a directory written atomically (temp dir + rename).

    <dir>/weights.npz   the trained weights: canonical keys (bench.convert.torch_key, e.g.
                        `blocks_0/read/q/weight`), torch layouts, float32 numpy arrays
    <dir>/ema.npz       the EMA of the weights, same keys (only when the run kept an EMA)
    <dir>/meta.json     FORMAT, arch, preset, overrides, resolved config, backend that wrote it,
                        step, flops spent, optimizer, dataset, ema decay, sha256 of each .npz

Either backend loads either file through bench.convert (canonical_to_torch / canonical_to_flax);
no framework is needed to read one. Schema: docs/training.md.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.records import file_sha256
from bench.strict_yaml import show
from bench.training import safe_npz

FORMAT = "diffbench-checkpoint/1"
WEIGHTS, EMA, META = "weights.npz", "ema.npz", "meta.json"
MAX_META_BYTES = 16 * 2**20  # meta.json holds a config and optimizer settings: kilobytes


class CheckpointError(ValueError):
    """A missing, incomplete, corrupted or mismatched checkpoint; one line naming the path."""

    def __init__(self, message: str):
        from bench.safe_text import printable

        super().__init__(printable(message))


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    meta: dict
    weights: dict  # canonical key -> np.ndarray
    ema: dict | None


def write(path, weights: dict, meta: dict, ema: dict | None = None) -> Path:
    """Write a checkpoint directory at `path` (which must not exist yet); returns it."""
    path = Path(path)
    if path.exists():
        raise CheckpointError(f"{path}: already exists; a checkpoint is never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {WEIGHTS: weights, **({EMA: ema} if ema is not None else {})}
        sums = {}
        for name, arrays in files.items():
            np.savez(tmp / name, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
            sums[name] = file_sha256(tmp / name)
        full = {"format": FORMAT, **meta, "has_ema": ema is not None, "sha256": sums,
                "layout": "canonical keys (bench.convert.torch_key), torch layouts, float32",
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / META).write_text(json.dumps(full, indent=1, sort_keys=True))
        os.rename(tmp, path)  # atomic on one filesystem: readers see all of it or nothing
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read(path, expect: dict | None = None, arch: str | None = None) -> Checkpoint:
    """Load and verify (format, sha256, each array's header) a checkpoint directory. `arch` and
    `expect` (canonical key -> shape, the model's) refuse a checkpoint of another architecture
    and arrays that do not match, before any array is read. Every problem is one CheckpointError
    naming the file."""
    path = Path(path)
    meta = read_meta(path)
    if arch is not None:
        check_compatible(Checkpoint(path, meta, {}, None), arch)
    arrays = {}
    for name in (WEIGHTS, EMA) if meta["has_ema"] else (WEIGHTS,):
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        try:
            with open(file, "rb") as f:  # hashed and read through one descriptor: what is read is what was hashed
                if file_sha256(f) != meta["sha256"][name]:
                    raise CheckpointError(f"{file}: sha256 does not match {META} (corrupted or edited)")
                f.seek(0)
                arrays[name] = safe_npz.read(f, expect)
        except safe_npz.NpzError as exc:
            raise CheckpointError(f"{file}: {exc}") from None
        except OSError as exc:
            raise CheckpointError(f"{file}: unreadable ({exc.strerror or exc})") from None
    return Checkpoint(path, meta, arrays[WEIGHTS], arrays.get(EMA))


def read_meta(path) -> dict:
    """A checkpoint directory's meta.json, checked for what read() and the loaders use: a mapping
    with the format, a sha256 string per weights file, has_ema a boolean, arch a string, config a
    mapping."""
    meta_path = Path(path) / META
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: not a diffbench checkpoint (no {META}); expected a directory written by "
                              "`diffbench run` with measure 'train'")
    try:
        with open(meta_path, "rb") as f:
            text = f.read(MAX_META_BYTES + 1)
        if len(text) > MAX_META_BYTES:
            raise CheckpointError(f"{meta_path}: larger than {MAX_META_BYTES // 2**20} MiB; allowed: the small "
                                  "JSON file diffbench writes")
        meta = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise CheckpointError(f"{meta_path}: unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: a JSON {type(meta).__name__}; allowed: a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: format {show(meta.get('format'))}; allowed: {FORMAT}")
    meta.setdefault("has_ema", False)
    sums = meta.get("sha256")
    wanted = (WEIGHTS, EMA) if meta["has_ema"] is True else (WEIGHTS,)
    problems = [(key, value, allowed) for key, value, allowed in (
        ("has_ema", meta["has_ema"], "true or false"),
        ("arch", meta.get("arch", ""), "a string"),
        ("config", meta.get("config", {}), "a JSON object"),
        ("sha256", sums, f"an object with a hex digest for {', '.join(wanted)}"),
    ) if not _ok(key, value, wanted)]
    if problems:
        key, value, allowed = problems[0]
        raise CheckpointError(f"{meta_path}: {key} is {show(value)}; allowed: {allowed}")
    return meta


def _ok(key: str, value, wanted) -> bool:
    if key == "has_ema":
        return isinstance(value, bool)
    if key == "arch":
        return isinstance(value, str)
    if key == "config":
        return isinstance(value, dict)
    return isinstance(value, dict) and all(isinstance(value.get(n), str) for n in wanted)


def check_compatible(ckpt: Checkpoint, arch: str) -> None:
    """A checkpoint starts a run of the same architecture (shapes are checked on loading)."""
    if ckpt.meta.get("arch") != arch:
        raise CheckpointError(f"{ckpt.path}: written for arch {ckpt.meta.get('arch')!r}, the case is {arch!r}")
