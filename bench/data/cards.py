"""The dataset names and their cards (datasets/<name>.yaml), standard library only: `diffbench
plan` checks a suite's datasets against the cards without importing numpy."""

from __future__ import annotations

from pathlib import Path

BUILTIN = ("digits", "shapes", "moving-digits")
FROM_ROOT = ("cifar10", "imagefolder", "videofolder", "npy-clips")
DATASETS = BUILTIN + FROM_ROOT
CARDS = Path(__file__).resolve().parents[2] / "datasets"  # data only; see datasets/README.md


def read(name: str) -> dict:
    """datasets/<name>.yaml as plain data (duplicate keys rejected); ValueError naming the file."""
    from bench.strict_yaml import SpecError, parse

    path = CARDS / f"{name}.yaml"
    try:
        card = parse(path.read_text(), str(path))
    except OSError as exc:
        raise ValueError(f"{path}: dataset card unreadable ({exc.strerror})") from None
    except SpecError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(card, dict) or card.get("name") != name:
        raise ValueError(f"{path}: a dataset card must be a mapping with name: {name}")
    return card
