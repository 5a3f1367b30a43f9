"""Datasets: `load_dataset(name, ...)` -> Dataset (float32 in [-1, 1], channels last).

Built-in (offline, seeded): digits, shapes, moving-digits. From a folder the user gives:
cifar10, imagefolder, videofolder, npy-clips. Cards in datasets/<name>.yaml; see docs/datasets.md.
"""

from bench.data.catalog import DATASETS, load_dataset
from bench.data.dataset import DataError, Dataset

__all__ = ["DATASETS", "DataError", "Dataset", "load_dataset"]
