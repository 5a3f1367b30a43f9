"""Folders of clips: video files decoded with PyAV (FFmpeg), or .npy arrays (T, H, W, C) uint8.

Each clip gives its first `frames` frames, each centre-cropped to the largest square and
resized bicubic; a clip with fewer frames is an error naming it (never padded or looped).
"""

from __future__ import annotations

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
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream (videofolder)")
            for frame in container.decode(container.streams.video[0]):
                out.append(frame.to_ndarray(format="rgb24"))
                if len(out) == frames:
                    break
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: not a decodable video ({type(exc).__name__}: {exc})") from None
    _check_length(path, len(out), frames)
    return np.stack(out)


def read_npy(path: Path, frames: int) -> np.ndarray:
    """The first `frames` frames of a (T, H, W, C) uint8 .npy clip, C in (1, 3)."""
    try:
        clip = np.load(path, mmap_mode="r", allow_pickle=False)  # never unpickles objects
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a .npy array ({type(exc).__name__}: {exc})") from None
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] not in (1, 3):
        raise DataError(f"{path}: array {clip.dtype} {clip.shape}; allowed: uint8 (T, H, W, C) with C 1 or 3")
    _check_length(path, len(clip), frames)
    return np.array(clip[:frames])


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
