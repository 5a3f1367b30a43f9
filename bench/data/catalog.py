"""load_dataset: one entry point for every dataset, its arguments checked against the card.

Examples come in a seeded order (a permutation drawn from `seed`, or the generator's stream for
procedural data) and `limit` keeps the first `limit` of that order, so a small limit is a
deterministic random subset spanning the classes, and a larger limit extends it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.data import builtin, cifar10, digits, folders, video
from bench.data.cards import BUILTIN, DATASETS
from bench.data.dataset import Dataset, DataError, read_card, to_unit

SPLIT_STREAM = {"train": 0, "test": 1, "val": 2}  # procedural splits draw disjoint streams


def load_dataset(name: str, *, root=None, resolution: int = 32, channels: int = 3,
                 frames: int | None = None, split: str = "train", seed: int = 0,
                 limit: int | None = None) -> Dataset:
    """Examples of dataset `name` as float32 in [-1, 1], channels last; see docs/datasets.md."""
    if name not in DATASETS:
        raise DataError(f"dataset {name!r}: unknown; allowed: {', '.join(DATASETS)}")
    card = read_card(name)
    video = card["kind"] == "video"
    _check_int(name, "resolution", resolution, 1)
    _check_int(name, "channels", channels, 1)
    _check_int(name, "seed", seed, 0)
    if limit is not None:
        _check_int(name, "limit", limit, 1)
    if split not in card["splits"]:
        raise DataError(f"dataset {name}: split {split!r} not available; allowed: {', '.join(card['splits'])}")
    if not video and frames is not None:
        raise DataError(f"dataset {name}: frames={frames!r} given for an image dataset; allowed: None")
    if video:
        frames = card["frames"] if frames is None else frames
        _check_int(name, "frames", frames, 1)
        frames = int(frames)
    resolution, channels, seed = int(resolution), int(channels), int(seed)
    if name in BUILTIN:
        if root is not None:
            raise DataError(f"dataset {name}: root={str(root)!r} given for a built-in dataset; allowed: None")
        return _builtin(name, card, resolution, channels, frames, split, seed, limit)
    if root is None:
        raise DataError(f"dataset {name}: root is required (the folder holding the data; see docs/datasets.md)")
    if channels not in (1, 3):
        raise DataError(f"dataset {name}: channels={channels} not available; allowed: 1 (luminance), 3 (RGB)")
    return _from_root(name, card, Path(root).expanduser(), resolution, channels, frames, split, seed, limit)


def _check_int(name: str, key: str, value, least: int):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise DataError(f"dataset {name}: {key}={value!r} invalid; allowed: an integer >= {least}")


def _limit_size(name: str, split: str, size: int, limit):
    if limit is not None and limit > size:
        raise DataError(f"dataset {name}: limit={limit} exceeds the {size} examples of split {split!r}; "
                        f"allowed: 1..{size}")


def _builtin(name, card, resolution, channels, frames, split, seed, limit) -> Dataset:
    size = card["splits"][split]
    _limit_size(name, split, size, limit)
    stream = (seed, SPLIT_STREAM[split])
    if name == "digits":
        x, y = digits.digits(split, resolution, channels, stream, limit)
    elif name == "moving-digits":
        x, y = digits.moving_digits(split, size, frames, resolution, channels, stream, limit)
    else:
        x, y = builtin.shapes(size, resolution, channels, len(builtin.KINDS), stream, first=limit)
    classes = tuple(str(c) for c in card["classes"])
    return Dataset(name, x, y.astype(np.int32), len(classes), card, split, classes)


def _from_root(name, card, root, resolution, channels, frames, split, seed, limit) -> Dataset:
    if name == "cifar10":
        images, labels = cifar10.load(root, split)
        _limit_size(name, split, len(images), limit)
        order = np.random.default_rng(seed).permutation(len(images))[:limit]
        pixels = cifar10.resize(images[order], resolution, channels, root)
        classes = tuple(card["classes"])
        return Dataset(name, to_unit(pixels), labels[order], len(classes), card, split, classes)
    extensions = {"imagefolder": folders.IMAGE_EXTENSIONS, "videofolder": video.VIDEO_EXTENSIONS,
                  "npy-clips": video.NPY_EXTENSIONS}[name]
    tree = folders.scan(folders.split_folder(root, split, name), extensions, name, root)
    if tree.skipped:  # reported, never silently dropped
        from bench.safe_text import printable

        print(printable(f"diffbench: warning: {tree.folder}: skipped {tree.skipped_note}: neither files nor "
                        "folders"), file=sys.stderr)
    files, labels = folders.pick(tree, seed, limit, name)
    if name == "imagefolder":
        pixels = np.stack([folders.read_image(f, resolution, channels) for f in files])
    else:
        pixels = video.load_clips(files, name, frames, resolution, channels)
    return Dataset(name, to_unit(pixels), labels, len(tree.classes), card, split, tree.classes, tree.skipped)
