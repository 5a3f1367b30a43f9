"""Built-in datasets drawn from scikit-learn's 1,797 real 8x8 handwritten digits (UCI optdigits
test set, shipped inside the scikit-learn wheel: no download).

`digits`: the digits resized to the resolution asked for (bicubic on float), grey replicated to
the channels asked for. `moving-digits`: one digit per clip moving at constant velocity and
bouncing off the borders over T frames (Moving MNIST, Srivastava et al. 2015, with one digit so
each clip keeps its class label).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bench.data.dataset import resize_float

TEST_COUNT = 360  # the last 360 of the 1,797 digits (20%) are the test split; the rest train
SPRITE = 0.45  # digit side / frame side, as Moving MNIST's 28 px digits in 64 px frames


@lru_cache(maxsize=1)
def _all_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # intensities 0..16 -> [0, 1]
    return images, bunch.target.astype(np.int32)


def split_digits(split: str):
    """(images (n, 8, 8) float32 in [0, 1], labels (n,) int32) of one split, in sklearn's order."""
    images, labels = _all_digits()
    cut = len(images) - TEST_COUNT
    return (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])


def digits(split: str, resolution: int, channels: int, seed, count: int | None):
    """The split's digits in a seeded order; the first `count` of them (all when None)."""
    images, labels = split_digits(split)
    order = np.random.default_rng(seed).permutation(len(images))[:count]
    x = resize_float(images[order] * 2.0 - 1.0, resolution)
    return _replicate(x, channels), labels[order]


def moving_digits(split: str, n: int, frames: int, resolution: int, channels: int, seed,
                  count: int | None):
    """n clips' motions drawn from `seed`; the first `count` rendered as (count, frames, res,
    res, channels) in [-1, 1] (background -1), with each clip's digit label."""
    images, labels = split_digits(split)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(images), n)
    side = max(2, round(SPRITE * resolution))
    room = resolution - side  # top-left corner moves in [0, room]
    start = rng.uniform(0.0, 1.0, (n, 2)) * room
    # 4-8% of the frame per step on each axis, random directions: visible motion at any size
    velocity = rng.uniform(0.04, 0.08, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2)) * resolution
    count = n if count is None else min(count, n)
    sprites = resize_float(images[which[:count]], side, 0.0, 1.0)
    clips = np.zeros((count, frames, resolution, resolution), np.float32)
    steps = np.arange(frames)[:, None]
    for i in range(count):
        corners = np.rint(_bounce(start[i] + steps * velocity[i], room)).astype(int)  # (frames, 2)
        for f, (top, left) in enumerate(corners.tolist()):
            window = clips[i, f, top:top + side, left:left + side]
            np.maximum(window, sprites[i], out=window)  # Moving MNIST composites by max
    clips *= 2.0  # in place: [0, 1] -> [-1, 1] with no 5-D temporaries
    clips -= 1.0
    return _replicate(clips, channels), labels[which[:count]]


def _replicate(grey: np.ndarray, channels: int) -> np.ndarray:
    """(..., H, W) float32 -> (..., H, W, channels), one allocation."""
    out = np.empty(grey.shape + (channels,), np.float32)
    out[...] = grey[..., None]
    return out


def _bounce(pos, room: float):
    """Reflect a free trajectory into [0, room] (a triangle wave)."""
    if room <= 0:
        return np.zeros_like(pos)
    u = np.mod(pos, 2 * room)
    return np.where(u > room, 2 * room - u, u)
