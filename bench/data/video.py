"""Folders of clips: video files decoded with PyAV (FFmpeg), or .npy arrays (T, H, W, C) uint8.

Each clip gives its first `frames` frames, each centre-cropped to the largest square and
resized bicubic; a clip with fewer frames is an error naming it (never padded or looped).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from bench.data.dataset import DataError, fit_frame

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".gif")
NPY_EXTENSIONS = (".npy",)


def decode_video(path: Path, frames: int) -> np.ndarray:
    """The first `frames` frames of the first video stream: uint8 (frames, H, W, 3)."""
    import av

    out = []
    try:
        # the file's metadata (title, encoder, ...) is never used: bytes that are not UTF-8 there
        # must not stop the pixels from loading
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream (videofolder)")
            for frame in container.decode(container.streams.video[0]):
                out.append(frame.to_ndarray(format="rgb24"))
                _check_frame(path, out[-1].shape)
                if len(out) == frames:
                    break
    except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:  # ValueError: UnicodeDecodeError too
        raise DataError(f"{path}: not a decodable video ({type(exc).__name__}: {exc})") from None
    _check_length(path, len(out), frames)
    return np.stack(out)


def read_npy(path: Path, frames: int) -> np.ndarray:
    """The first `frames` frames of a (T, H, W, C) uint8 .npy clip, C in (1, 3).

    The header is read and checked first (a .npz or any other file named .npy, an object array,
    a shape the file is too short for are refused); then only the frames taken are read from a
    memory map. Nothing is ever unpickled."""
    shape, fortran, dtype, offset, size = _npy_header(path)
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] not in (1, 3):
        raise DataError(f"{path}: array {dtype} {shape}; allowed: uint8 (T, H, W, C) with C 1 or 3")
    _check_frame(path, shape[1:])
    if offset + int(np.prod(shape, dtype=object)) > size:
        raise DataError(f"{path}: header says {shape} but the file holds {size - offset} bytes of data "
                        "(truncated?); allowed: a complete .npy file")
    _check_length(path, shape[0], frames)
    clip = np.memmap(path, np.uint8, "r", offset=offset, shape=shape, order="F" if fortran else "C")
    return np.array(clip[:frames])


def _npy_header(path: Path):
    """(shape, fortran order, dtype, data offset, file size) of a .npy file, from its header only."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"{path}: not a regular file; allowed: a .npy file")
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"format version {version}")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            return shape, fortran, dtype, f.tell(), info.st_size
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - np.lib.format parses the header text with tokenize and
        # literal_eval: ValueError mostly, but also TokenError, SyntaxError, RecursionError, ...
        raise DataError(f"{path}: not a .npy array ({type(exc).__name__}: {exc}); allowed: a .npy file "
                        "(format 1.0 or 2.0) of uint8 (T, H, W, C)") from None


def _check_frame(path: Path, hwc):
    """A frame has at least one row and one column (a 0-height clip would load as all black)."""
    if hwc[0] < 1 or hwc[1] < 1:
        raise DataError(f"{path}: frames of {hwc[0]}x{hwc[1]} pixels; allowed: at least 1x1")


def _check_length(path: Path, have: int, frames: int):
    if have < frames:
        raise DataError(f"{path}: frames={frames} not available, the clip has {have}; allowed: 1..{have}")


def load_clips(files, kind: str, frames: int, resolution: int, channels: int) -> np.ndarray:
    """uint8 (N, frames, resolution, resolution, channels)."""
    read = decode_video if kind == "videofolder" else read_npy
    out = np.empty((len(files), frames, resolution, resolution, channels), np.uint8)
    for i, path in enumerate(files):
        clip = read(path, frames)
        out[i] = np.stack([fit_frame(f, resolution, channels) for f in clip])
    return out
