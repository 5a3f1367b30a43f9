"""Class-per-folder trees (ImageNet / torchvision ImageFolder layout) and the image loader.

ROOT/SPLIT/CLASS/FILE when ROOT/SPLIT exists, else ROOT/CLASS/FILE read as the train split.
Classes are the sub-folder names sorted (label = index); files below a class folder are taken
recursively in sorted path order. A folder holding files and no sub-folders is unlabeled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.data.dataset import DataError, fit
from bench.data.walk import Walker

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Tree:
    folder: Path
    files: tuple[Path, ...]
    labels: np.ndarray | None  # int32 per file, None when unlabeled
    classes: tuple[str, ...]
    skipped: dict = field(default_factory=dict)  # kind -> count of entries neither file nor folder
    skipped_note: str = ""  # the counts and the first such path, for the warning line


def split_folder(root, split: str, name: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory ({name} reads ROOT/[SPLIT/]CLASS/FILE)")
    if (root / split).is_dir():
        return root / split
    if split == "train":
        return root
    raise DataError(f"{root / split}: not a directory (split {split!r} of {name} reads ROOT/{split}/; "
                    f"ROOT itself is read only as the train split)")


def scan(folder: Path, extensions: tuple[str, ...], name: str, root=None, follow_links=None) -> Tree:
    """The class folders and files of `folder`; symbolic links and special files as
    bench/data/walk.py says, inside the dataset folder `root` (default: `folder`)."""
    walker = Walker(folder if root is None else root, follow_links)
    dirs, entries = walker.listing(folder)
    files = [p for p in entries if p.suffix.lower() in extensions]
    allowed = " ".join(extensions)
    if dirs and files:
        raise DataError(f"{folder}: holds both class folders ({dirs[0].name}, ...) and files "
                        f"({files[0].name}, ...); allowed: only class folders, or only files")
    if not dirs:
        if not files:
            raise DataError(f"{folder}: no class folders and no files with extensions {allowed} ({name})")
        return Tree(folder, tuple(files), None, (), dict(walker.skipped), walker.summary())
    paths, labels = [], []
    for label, d in enumerate(dirs):
        found = walker.files_below(d, extensions)
        if not found:
            raise DataError(f"{d}: class folder has no files with extensions {allowed} ({name})")
        paths += found
        labels += [label] * len(found)
    return Tree(folder, tuple(paths), np.asarray(labels, np.int32), tuple(d.name for d in dirs),
                dict(walker.skipped), walker.summary())


def pick(tree: Tree, seed: int, limit: int | None, name: str):
    """The first `limit` files of a seeded permutation: (files, labels or None)."""
    if limit is not None and limit > len(tree.files):
        raise DataError(f"{tree.folder}: limit={limit} exceeds the {len(tree.files)} files found "
                        f"({name}); allowed: 1..{len(tree.files)}")
    order = np.random.default_rng(seed).permutation(len(tree.files))[:limit]
    files = [tree.files[i] for i in order]
    return files, None if tree.labels is None else tree.labels[order]


def read_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return fit(image, resolution, channels)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
