"""load_dataset: the built-in datasets (values, determinism in the seed, limit as a prefix),
every dataset's card, and the one-line errors for arguments a dataset cannot give."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
import yaml
from hypothesis import given, settings, strategies as st

from bench.data import DATASETS, DataError, load_dataset
from bench.data.digits import split_digits

CARDS = Path(__file__).resolve().parents[1] / "datasets"
CARD_KEYS = {"name", "title", "kind", "source", "format", "license", "resolution", "channels",
             "labels", "splits", "citation"}


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_has_a_card(name):
    card = yaml.safe_load((CARDS / f"{name}.yaml").read_text())
    assert CARD_KEYS <= set(card) and card["name"] == name and card["kind"] in ("image", "video")
    assert ("frames" in card) == (card["kind"] == "video")
    assert name in (CARDS / "README.md").read_text()


def test_digits_values_are_sklearns():
    """At the native 8 x 8, each example is one of the split's digits (0..16 -> [-1, 1]) with its
    own label, each exactly once."""
    ds = load_dataset("digits", resolution=8, channels=1, split="test")
    images, labels = split_digits("test")
    raw = sklearn.datasets.load_digits()
    np.testing.assert_array_equal(images, raw.images[-360:] / 16.0)
    assert ds.x.shape == (360, 8, 8, 1) and ds.num_classes == 10 and ds.card["splits"]["test"] == 360
    want = sorted((im.astype(np.float32) * 2 - 1).tobytes() + bytes([y]) for im, y in zip(images, labels))
    got = sorted(x[..., 0].tobytes() + bytes([y]) for x, y in zip(ds.x, ds.y))
    assert got == want


def test_digits_resized_and_replicated():
    ds = load_dataset("digits", resolution=24, channels=3, limit=50)
    assert ds.x.shape == (50, 24, 24, 3) and ds.x.min() >= -1 and ds.x.max() <= 1
    np.testing.assert_array_equal(ds.x[..., 0], ds.x[..., 2])
    # upsampling keeps the image: its 3 x 3 block means track the 8 x 8 original
    small = load_dataset("digits", resolution=8, channels=1, limit=50)
    blocks = ds.x[..., 0].reshape(50, 8, 3, 8, 3).mean(axis=(2, 4))
    assert np.corrcoef(blocks.ravel(), small.x.ravel())[0, 1] > 0.95


def test_digits_card_checksum_matches_the_installed_file():
    card = load_dataset("digits", resolution=8, limit=1).card["checksum"]
    path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card["sha256"]


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(["digits", "shapes", "moving-digits"]), seed=st.integers(0, 2**31),
       split=st.sampled_from(["train", "test"]), limit=st.integers(1, 6))
def test_builtin_determinism_and_prefix(name, seed, split, limit):
    kw = dict(resolution=12, seed=seed, split=split, frames=3 if name == "moving-digits" else None)
    a = load_dataset(name, limit=limit, **kw)
    b = load_dataset(name, limit=limit + 3, **kw)
    np.testing.assert_array_equal(a.x, b.x[:limit])  # limit keeps a prefix of one seeded order
    np.testing.assert_array_equal(a.y, b.y[:limit])
    other = load_dataset(name, limit=limit + 3, **{**kw, "seed": seed + 1})
    assert not np.array_equal(b.x, other.x)
    assert a.x.dtype == np.float32 and -1 <= a.x.min() and a.x.max() <= 1
    assert a.y.dtype == np.int32 and 0 <= a.y.min() and a.y.max() < a.num_classes


def test_splits_differ():
    for name in ("shapes", "moving-digits", "digits"):
        train = load_dataset(name, limit=4, resolution=8)
        test = load_dataset(name, limit=4, resolution=8, split="test")
        assert not np.array_equal(train.x, test.x)


def test_shapes_any_channels_and_classes():
    ds = load_dataset("shapes", resolution=20, channels=5, limit=40)
    assert ds.x.shape == (40, 20, 20, 5) and ds.classes == ("disc", "square", "triangle", "ring")
    assert set(ds.y.tolist()) == {0, 1, 2, 3}


def test_moving_digits_motion():
    """One digit per clip, fully inside the frame at every step: its total ink is constant while
    its position changes (constant velocity, reflected at the borders)."""
    ds = load_dataset("moving-digits", resolution=32, channels=2, frames=20, limit=8)
    assert ds.x.shape == (8, 20, 32, 32, 2) and ds.card["frames"] == 16
    np.testing.assert_array_equal(ds.x[..., 0], ds.x[..., 1])
    ink = (ds.x[..., 0] + 1) / 2
    totals = ink.sum(axis=(2, 3))
    np.testing.assert_allclose(totals, totals[:, :1].repeat(20, axis=1), rtol=1e-5)
    rows = np.arange(32)
    centroid = (ink.sum(axis=3) * rows).sum(axis=2) / totals  # (clips, frames) row centroid
    steps = np.abs(np.diff(centroid, axis=1))
    assert (steps.max(axis=1) > 0.5).all()  # every clip moves
    assert load_dataset("moving-digits", resolution=16, limit=2).x.shape[1] == 16  # card default


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="mnist"), r"dataset 'mnist': unknown; allowed: digits, shapes, moving-digits, cifar10"),
    (dict(name="cifar10"), r"dataset cifar10: root is required"),
    (dict(name="digits", root="/data"), r"root='/data' given for a built-in dataset; allowed: None"),
    (dict(name="digits", frames=4), r"frames=4 given for an image dataset; allowed: None"),
    (dict(name="shapes", resolution=0), r"resolution=0 invalid; allowed: an integer >= 1"),
    (dict(name="shapes", resolution=32.0), r"resolution=32.0 invalid"),
    (dict(name="shapes", channels=True), r"channels=True invalid"),
    (dict(name="moving-digits", frames=0), r"frames=0 invalid"),
    (dict(name="digits", split="val"), r"split 'val' not available; allowed: train, test"),
    (dict(name="digits", limit=0), r"limit=0 invalid"),
    (dict(name="digits", limit=1438), r"limit=1438 exceeds the 1437 examples of split 'train'"),
    (dict(name="cifar10", root="/nonexistent-diffbench"), r"/nonexistent-diffbench: not a directory"),
])
def test_errors_name_the_value_and_what_is_allowed(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(DataError, match=message) as info:
        load_dataset(name, **kwargs)
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["digits", "moving-digits"])
def test_an_example_does_not_depend_on_the_rest_of_the_batch(name):
    """Resizing clips to a fixed range, not the batch's (a faint digit alone once came out
    different from the same digit in a batch with a full-intensity one)."""
    frames = 2 if name == "moving-digits" else None
    for seed in range(20):
        one = load_dataset(name, resolution=13, seed=seed, limit=1, frames=frames)
        many = load_dataset(name, resolution=13, seed=seed, limit=40, frames=frames)
        np.testing.assert_array_equal(one.x[0], many.x[0])
