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

FORMAT = "diffbench-checkpoint/1"
WEIGHTS, EMA, META = "weights.npz", "ema.npz", "meta.json"


class CheckpointError(ValueError):
    """A missing, incomplete, corrupted or mismatched checkpoint; the message names the path."""


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


def read(path) -> Checkpoint:
    """Load and verify (format, sha256) a checkpoint directory."""
    path = Path(path)
    meta_path = path / META
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: not a diffbench checkpoint (no {META}); expected a directory written by "
                              "`diffbench run` with measure 'train'")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{meta_path}: unreadable: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: format {meta.get('format')!r}; allowed: {FORMAT}")
    arrays = {}
    for name in (WEIGHTS, EMA) if meta.get("has_ema") else (WEIGHTS,):
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing")
        if file_sha256(file) != meta["sha256"].get(name):
            raise CheckpointError(f"{file}: sha256 does not match {META} (corrupted or edited)")
        with np.load(file, allow_pickle=False) as npz:
            arrays[name] = {k: npz[k] for k in npz.files}
    return Checkpoint(path, meta, arrays[WEIGHTS], arrays.get(EMA))


def check_compatible(ckpt: Checkpoint, arch: str) -> None:
    """A checkpoint starts a run of the same architecture (shapes are checked on loading)."""
    if ckpt.meta.get("arch") != arch:
        raise CheckpointError(f"{ckpt.path}: written for arch {ckpt.meta.get('arch')!r}, the case is {arch!r}")
