"""Datasets: `load_dataset(name, ...)` -> Dataset (float32 in [-1, 1], channels last).

Built-in (offline, seeded): digits, shapes, moving-digits. From a folder the user gives:
cifar10, imagefolder, videofolder, npy-clips. Cards in datasets/<name>.yaml; see docs/datasets.md.
"""

__all__ = ["DATASETS", "DataError", "Dataset", "load_dataset"]


def __getattr__(name: str):
    """Lazy: `from bench.data import DATASETS` (and the cards) need no numpy, so `diffbench plan`
    checks a suite's datasets without importing it."""
    if name == "DATASETS":
        from bench.data.cards import DATASETS

        return DATASETS
    if name == "load_dataset":
        from bench.data.catalog import load_dataset

        return load_dataset
    if name in ("DataError", "Dataset"):
        from bench.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
