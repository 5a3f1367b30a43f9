"""The Dataset record every loader returns, its error type, dataset cards, and pixel helpers.

Arrays are numpy float32, channels last, in [-1, 1]: images (N, H, W, C), videos
(N, T, H, W, C). uint8 pixels map as x / 127.5 - 1 (0 -> -1, 255 -> 1), the inverse of the
(x * 127.5 + 128) quantization a PNG writer applies to samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from bench.data import cards

CARDS = cards.CARDS


class DataError(ValueError):
    """A dataset that cannot be loaded as asked, on one line: what (path or key), the bad value,
    and what is allowed."""

    def __init__(self, message: str):
        from bench.safe_text import printable

        super().__init__(printable(message))


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    x: np.ndarray  # float32 in [-1, 1], (N, H, W, C) or (N, T, H, W, C)
    y: np.ndarray | None  # int32 (N,) class labels, None when the dataset has none
    num_classes: int  # 0 when unlabeled
    card: dict = field(repr=False)  # datasets/<name>.yaml
    split: str = "train"
    classes: tuple[str, ...] = ()  # class names by label index, where the source names them
    skipped: dict = field(default_factory=dict)  # kind -> count of folder entries not read (FIFOs, ...)

    def __post_init__(self):
        if self.x.dtype != np.float32 or self.x.ndim not in (4, 5):
            raise ValueError(f"{self.name}: x must be float32 (N,H,W,C) or (N,T,H,W,C), "
                             f"got {self.x.dtype} {self.x.shape}")
        if self.y is not None and (self.y.dtype != np.int32 or self.y.shape != self.x.shape[:1]):
            raise ValueError(f"{self.name}: y must be int32 ({len(self.x)},), got {self.y.dtype} {self.y.shape}")
        if (self.y is None) != (self.num_classes == 0):
            raise ValueError(f"{self.name}: labels and num_classes={self.num_classes} disagree")

    def __len__(self) -> int:
        return len(self.x)


def read_card(name: str) -> dict:
    """datasets/<name>.yaml as plain data (duplicate keys rejected)."""
    try:
        return cards.read(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None


_UNIT = (np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1], through a 256-entry table: one pass, no temporaries
    (CIFAR-10's train split is 600 MB as float32)."""
    return _UNIT[pixels]


def center_crop(image: Image.Image) -> Image.Image:
    """The largest centred square (ADM / torchvision ImageNet convention: crop, then resize)."""
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s))


def fit(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """A PIL image -> uint8 (resolution, resolution, channels): centre crop, bicubic resize
    (antialiased when shrinking), RGB or luminance ('L', ITU-R 601-2)."""
    image = image.convert("L" if channels == 1 else "RGB")
    square = center_crop(image)
    if square.size != (resolution, resolution):
        square = square.resize((resolution, resolution), Image.Resampling.BICUBIC)
    pixels = np.asarray(square, np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def fit_frame(frame: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """uint8 (H, W, 1|3) -> uint8 (resolution, resolution, channels) through fit()."""
    return fit(Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame), resolution, channels)


def resize_float(images: np.ndarray, resolution: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """float32 (N, h, w) -> (N, resolution, resolution): PIL bicubic on float ('F' mode, as
    clean-fid resizes), clipped back into [lo, hi] (bicubic overshoots at edges). A fixed range,
    not the batch's, so an image comes out the same whatever else is in the batch."""
    if images.shape[1:] == (resolution, resolution):
        return images.astype(np.float32)
    out = np.stack([np.asarray(Image.fromarray(im.astype(np.float32))
                               .resize((resolution, resolution), Image.Resampling.BICUBIC))
                    for im in images])
    return np.clip(out, lo, hi).astype(np.float32)
