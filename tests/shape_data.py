"""Training data for tests, shaped like a model's input: the built-in shapes datasets
(bench/data/builtin.py) cut to an x shape, with a video's conditioning frames."""

from __future__ import annotations

from bench.data import builtin


def for_shapes(x_shape: tuple[int, ...], num_classes: int = 0, seed: int = 0,
               context_frames: int = 0):
    """Data matching a model input x shape (B, H, W, C) or (B, T, H, W, C).

    Returns (x, y, context): context (B, context_frames, H, W, C) holds the frames before x for
    frame-conditioned video models, else None. Non-square sizes are cropped from a square.
    """
    if len(x_shape) == 4:
        b, h, w, c = x_shape
        images, labels = builtin.shapes(b, max(h, w), c, num_classes, seed)
        return images[:, :h, :w], labels, None
    b, t, h, w, c = x_shape
    videos, labels = builtin.moving_shapes(b, context_frames + t, max(h, w), c, num_classes, seed)
    videos = videos[:, :, :h, :w]
    context = videos[:, :context_frames] if context_frames else None
    return videos[:, context_frames:], labels, context
