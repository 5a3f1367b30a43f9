"""CIFAR-10, python version: the official pickle batches, read without running their code.

The batches are Python 2 pickles of {b'data': uint8 ndarray (N, 3072), b'labels': [int] * N,
b'batch_label': ..., b'filenames': [...]}. A pickle can call any importable function, so
`pickle.load` on a file from the internet runs whatever the file says. The unpickler below
admits exactly the three globals a pickled numpy array names (numpy's `_reconstruct`,
`ndarray`, `dtype`) and maps them to inert stand-ins that accept only a uint8 array's state;
every other global is a DataError before anything is called.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import stat
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.dataset import DataError
from bench.data.walk import Walker

TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = ("test_batch",)
SIDE = 32
# an official batch is 31,035,704 bytes (30,720,000 of pixels); anything twice that is not one,
# and is refused before it is read (a file larger than memory would otherwise be read whole)
MAX_BATCH_BYTES = 64 * 2**20
ALLOWED = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
           "numpy.ndarray", "numpy.dtype")


class _Ndarray:
    """Stands in for numpy.ndarray as _reconstruct's first argument; never instantiated."""


class _Uint8:
    """Stands in for numpy.dtype('u1'); accepts only that dtype's pickled state."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in (b"|", "|")):
            raise pickle.UnpicklingError(f"unexpected dtype state (a {type(state).__name__})")


def _dtype(name, align=0, copy=1):
    if name not in (b"u1", "u1"):
        shown = repr(name)[:20] if isinstance(name, (str, bytes)) else f"a {type(name).__name__}"
        raise pickle.UnpicklingError(f"dtype {shown} is not part of the format; allowed: u1")
    return _Uint8()


class _Array:
    """What _reconstruct returns; BUILD hands it (version, shape, dtype, fortran, raw bytes)."""

    value: np.ndarray | None = None  # stays None when the pickle never BUILDs the array

    def __setstate__(self, state):
        ok = isinstance(state, tuple) and len(state) == 5
        version, shape, dtype, fortran, raw = state if ok else (None,) * 5
        if not (ok and isinstance(dtype, _Uint8) and isinstance(raw, (bytes, bytearray))
                and isinstance(shape, tuple) and len(shape) <= 32 and all(type(s) is int and s >= 0 for s in shape)
                and math.prod(shape) == len(raw)):
            raise pickle.UnpicklingError("array state is not a uint8 array's")
        array = np.frombuffer(bytes(raw), np.uint8).reshape(shape, order="F" if fortran else "C")
        self.value = np.ascontiguousarray(array)


def _reconstruct(cls, shape, dtype_char):
    if cls is not _Ndarray:
        raise pickle.UnpicklingError("_reconstruct called on something other than ndarray")
    return _Array()


_STANDINS = {"numpy.core.multiarray._reconstruct": _reconstruct,
             "numpy._core.multiarray._reconstruct": _reconstruct,
             "numpy.ndarray": _Ndarray, "numpy.dtype": _dtype}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        standin = _STANDINS.get(f"{module}.{name}")
        if standin is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not part of the CIFAR-10 format; "
                                         f"allowed: {', '.join(ALLOWED)}")
        return standin

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not part of the CIFAR-10 format")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 (N, 32, 32, 3), int32 (N,) labels)."""
    blob = _read_bounded(path)
    try:
        batch = RestrictedUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, RecursionError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    data = batch.get(b"data") if type(batch) is dict else None
    labels = batch.get(b"labels") if type(batch) is dict else None
    if not isinstance(data, _Array) or data.value is None or type(labels) is not list:
        raise DataError(f"{path}: not a CIFAR-10 python batch (expected a dict with b'data' "
                        f"(uint8 N x 3072) and b'labels')")
    if data.value.ndim != 2 or data.value.shape[1] != 3 * SIDE * SIDE or len(labels) != len(data.value):
        raise DataError(f"{path}: b'data' has shape {data.value.shape} for {len(labels)} labels; "
                        f"allowed: (N, 3072) with N labels")
    # types first, then numpy: np.asarray on a nested or self-referencing list runs for minutes
    if not all(type(v) is int and 0 <= v <= 9 for v in labels):
        raise DataError(f"{path}: b'labels' must be a flat list of integers 0-9; allowed: N integers 0-9")
    y = np.asarray(labels, np.int32)
    # rows: 1024 red, 1024 green, 1024 blue, each 32 x 32 row-major -> (N, 32, 32, 3)
    return data.value.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1), y.astype(np.int32)


def _read_bounded(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_BATCH_BYTES, read through one descriptor."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it)
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"{path}: not a regular file; allowed: a CIFAR-10 python batch file")
            if info.st_size > MAX_BATCH_BYTES:
                raise DataError(f"{path}: {info.st_size} bytes, more than a CIFAR-10 batch can be "
                                f"(~31 MB); allowed: at most {MAX_BATCH_BYTES // 2**20} MiB")
            blob = f.read(MAX_BATCH_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror})") from None
    if len(blob) > MAX_BATCH_BYTES:  # grew while we read
        raise DataError(f"{path}: more than {MAX_BATCH_BYTES // 2**20} MiB; allowed: a CIFAR-10 batch (~31 MB)")
    return blob


def batches_dir(root: Path) -> Path:
    """ROOT itself or ROOT/cifar-10-batches-py (the tarball's top folder)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (cifar10 needs the extracted cifar-10-batches-py folder)")
    inner = root / "cifar-10-batches-py"
    return inner if inner.is_dir() else root


def load(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All of one split: uint8 (N, 32, 32, 3), int32 (N,)."""
    folder = batches_dir(root)
    names = TRAIN if split == "train" else TEST
    walker = Walker(root)  # batch files linked from outside ROOT: bench/data/walk.py
    walker.check_inside(folder)
    missing = [n for n in names if walker.kind(folder / n) != "file"]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} (split {split!r} needs "
                        f"{', '.join(names)}, as extracted from cifar-10-python.tar.gz)")
    parts = [read_batch(folder / n) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def resize(images: np.ndarray, resolution: int, channels: int, where: Path) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> uint8 (N, resolution, resolution, channels); never upsamples."""
    if resolution > SIDE:
        raise DataError(f"{where}: resolution={resolution} not available from CIFAR-10's "
                        f"{SIDE}x{SIDE} images; allowed: 1..{SIDE}")
    if resolution == SIDE and channels == 3:
        return images
    mode = "L" if channels == 1 else "RGB"
    out = [np.asarray(Image.fromarray(im).convert(mode)
                      .resize((resolution, resolution), Image.Resampling.BICUBIC)) for im in images]
    out = np.stack(out)
    return out[..., None] if channels == 1 else out
