"""Built-in procedural datasets: coloured shapes (images) and moving shapes (video).

Offline, deterministic in the seed, any resolution. Arrays are numpy float32, channels last,
in [-1, 1]: images (N, H, W, C), videos (N, T, H, W, C). The label of an example is its shape
kind (0 disc, 1 square, 2 triangle, 3 ring), taken modulo the number of classes asked for.
"""

from __future__ import annotations

import numpy as np

KINDS = ("disc", "square", "triangle", "ring")


def _mask(kind: int, yy, xx, cy, cx, r):
    """Boolean (..., H, W) mask of one shape centred at (cy, cx) with radius r (pixels)."""
    dy, dx = yy - cy, xx - cx
    if kind == 0:
        return dy**2 + dx**2 <= r**2
    if kind == 1:
        return (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r * 0.8)
    if kind == 2:
        return (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    d2 = dy**2 + dx**2
    return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)


def _paint(canvas, mask, colour):
    """canvas (H, W, C), mask (H, W), colour (C,) -> canvas with the shape painted."""
    return np.where(mask[..., None], colour, canvas)


def _draw_params(rng, n: int, size: int, channels: int, num_kinds: int):
    kinds = rng.integers(0, num_kinds, n)
    radius = rng.uniform(0.18, 0.32, n) * size
    centre = rng.uniform(0.3, 0.7, (n, 2)) * size
    colour = rng.uniform(-0.2, 1.0, (n, channels))
    background = rng.uniform(-1.0, -0.6, (n, channels))
    return kinds, radius, centre, colour, background


def shapes(n: int, size: int, channels: int = 3, num_classes: int = 0, seed: int = 0,
           num_kinds: int = len(KINDS), first: int | None = None):
    """n images (n, size, size, channels) and labels (n,) int32; `first` renders only the first
    that many of the n drawn (the same images as the full call's prefix)."""
    rng = np.random.default_rng(seed)
    kinds, radius, centre, colour, background = _draw_params(rng, n, size, channels, num_kinds)
    count = n if first is None else min(first, n)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images = np.empty((count, size, size, channels), np.float32)
    for i in range(count):
        canvas = np.broadcast_to(background[i], (size, size, channels))
        mask = _mask(int(kinds[i]), yy, xx, centre[i, 0], centre[i, 1], radius[i])
        images[i] = _paint(canvas, mask, colour[i])
    return images, _labels(kinds[:count], num_classes)


def moving_shapes(n: int, frames: int, size: int, channels: int = 3, num_classes: int = 0,
                  seed: int = 0, num_kinds: int = len(KINDS)):
    """n videos (n, frames, size, size, channels): one shape moving at constant velocity,
    bouncing off the borders; labels (n,) int32."""
    rng = np.random.default_rng(seed)
    kinds, radius, centre, colour, background = _draw_params(rng, n, size, channels, num_kinds)
    # 5-10% of the frame per step on each axis: visible motion at every resolution
    velocity = rng.uniform(0.05, 0.1, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2)) * size
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    videos = np.empty((n, frames, size, size, channels), np.float32)
    for i in range(n):
        canvas = np.broadcast_to(background[i], (size, size, channels))
        for f in range(frames):
            cy, cx = _bounce(centre[i] + f * velocity[i], radius[i], size)
            videos[i, f] = _paint(canvas, _mask(int(kinds[i]), yy, xx, cy, cx, radius[i]), colour[i])
    return videos, _labels(kinds, num_classes)


def _bounce(pos, r: float, size: int):
    """Reflect a free trajectory into [r, size - r] (a triangle wave)."""
    lo, span = r, max(size - 2 * r, 1e-6)
    u = np.mod(pos - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def _labels(kinds, num_classes: int):
    if num_classes <= 0:
        return np.zeros(len(kinds), np.int32)
    return (kinds % num_classes).astype(np.int32)
