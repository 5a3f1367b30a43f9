"""What a suite asks of a dataset, checked at suite load (`diffbench plan`), from the dataset
cards alone (standard library only): the name, the `root:` rule, counts against the split sizes the cards know, and the
dataset against the model's input. Each check returns None or (key, problem, allowed) for the
caller's SpecError; nothing here reads the data.
"""

from __future__ import annotations

import os

from bench.data.cards import BUILTIN, DATASETS, FROM_ROOT
from bench.data.cards import read as read_card

MAX_CIFAR_SIDE = 32  # CIFAR-10 is never upsampled (bench/data/cifar10.py)


def check_source(name, root):
    """The dataset name and its `root:`: built-ins take none, the others need an existing folder."""
    if not isinstance(name, str) or name not in DATASETS:
        return "dataset", f"unknown dataset {name!r}", DATASETS
    if name in BUILTIN and root is not None:
        return "root", f"root {root!r} given for the built-in dataset {name!r}", "null (built-in datasets need no files)"
    if name in FROM_ROOT and root is None:
        return "root", f"dataset {name!r} is read from files and needs `root:`", \
            "the folder holding the data (see docs/datasets.md)"
    if root is not None and not os.path.isdir(os.path.expanduser(root)):
        return "root", f"no directory {root!r}", "an existing directory (a relative path is taken from the " \
                                                 "working directory)"
    return None


def known_size(name: str, split: str = "train") -> int | None:
    """The split's number of examples where the card fixes it (built-ins, CIFAR-10), else None."""
    size = read_card(name)["splits"].get(split)
    return size if isinstance(size, int) else None


def check_count(name: str, key: str, value: int, factor: int = 1, why: str = ""):
    """`key` = value asks for value x factor examples of the train split (`why` says what for):
    at most what the dataset has, where that is known."""
    size = known_size(name)
    if size is not None and value * factor > size:
        need = f"{value * factor} examples ({why})" if why else f"{value} examples"
        return key, f"{key}={value} needs {need}; {name}'s train split has {size}", \
            f"{key} at most {size // factor}"
    return None


def check_model(name: str, x_shape: tuple, num_classes: int = 0):
    """The dataset against the model's input x (B, H, W, C) or (B, T, H, W, C): images for an
    image model and clips for a video model, channels and resolution it can give, labels that
    fit the model's classes (num_classes > 0: a class-conditional model trained on it)."""
    card = read_card(name)
    model_kind = "video" if len(x_shape) == 5 else "image"
    if card["kind"] != model_kind:
        same = [n for n in DATASETS if read_card(n)["kind"] == model_kind]
        article = "an" if card["kind"] == "image" else "a"
        return "dataset", f"{name!r} is {article} {card['kind']} dataset and the model takes {model_kind}s", same
    side, channels = x_shape[-2], x_shape[-1]
    if name in FROM_ROOT and channels not in (1, 3):
        return "dataset", f"{name!r} gives 1 or 3 channels and the model takes {channels}", \
            "a built-in dataset (any channel count)"
    if name == "cifar10" and side > MAX_CIFAR_SIDE:
        return "dataset", f"cifar10 images are {MAX_CIFAR_SIDE}x{MAX_CIFAR_SIDE} and the model takes {side}x{side} " \
                          "(never upsampled)", f"models of resolution <= {MAX_CIFAR_SIDE}, or another dataset"
    classes = card.get("classes") or ()
    if num_classes > 0 and len(classes) > num_classes:
        return "dataset", f"{name!r} has {len(classes)} classes and the model num_classes={num_classes}", \
            f"a dataset of at most {num_classes} classes, or a model with num_classes >= {len(classes)}"
    return None
