"""Hostile and damaged files given to the dataset loaders and the checkpoint reader: each ends as
one DataError / CheckpointError line naming the file, quickly and in bounded memory, never as a
raw exception, a hang or a multi-gigabyte allocation. Hypothesis mutates valid files byte by
byte; the named cases are the ones found by hand."""

from __future__ import annotations

import json
import os
import pickle
import resource
import tempfile
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.data import DataError, load_dataset
from bench.data.cifar10 import MAX_BATCH_BYTES, read_batch
from bench.data.walk import FOLLOW_ENV
from bench.records import file_sha256
from bench.training import checkpoint
from tests.test_data_cifar10 import _images, py2_batch
from tests.test_hardening import deadline

HOSTILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(exc: Exception, *needles):
    text = str(exc)
    assert "\n" not in text and "\x1b" not in text and "\r" not in text, repr(text)
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def mutations(blob: bytes):
    """A valid file's bytes, truncated, overwritten at a few offsets, or with bytes inserted."""
    edits = st.lists(st.tuples(st.integers(0, len(blob) - 1), st.binary(min_size=1, max_size=8)), max_size=6)

    def apply(args):
        cut, edits, insert = args
        out = bytearray(blob[:cut])
        for at, data in edits:
            if at < len(out):
                out[at:at + len(data)] = data
        if insert is not None:
            out[insert[0] % (len(out) + 1):insert[0] % (len(out) + 1)] = insert[1]
        return bytes(out)
    return st.tuples(st.integers(0, len(blob)), edits,
                     st.none() | st.tuples(st.integers(0, 10**6), st.binary(max_size=16))).map(apply)


# -- CIFAR-10 -------------------------------------------------------------------------------------
def _self_referencing_labels(n: int) -> bytes:
    """A list holding itself n times: np.asarray walks 2**32 elements of it."""
    return b"]q\x01(" + b"h\x01" * n + b"e"


def test_cifar_nested_self_referencing_labels_are_refused_at_once(tmp_path):
    data, _ = _images(np.random.default_rng(0), 2)
    blob = py2_batch(data, [0, 0], b"x")
    labels = b"](K\x00K\x00e"
    assert labels in blob
    (tmp_path / "test_batch").write_bytes(blob.replace(labels, _self_referencing_labels(2)))
    with deadline(10):
        with pytest.raises(DataError) as err:
            read_batch(tmp_path / "test_batch")
    one_line(err.value, "test_batch", "flat list of integers 0-9")


def test_cifar_2d_labels_are_a_data_error(tmp_path):
    data, _ = _images(np.random.default_rng(0), 2)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": [[1], [2]]}, protocol=4))
    with pytest.raises(DataError) as err:
        read_batch(tmp_path / "test_batch")
    one_line(err.value, "test_batch", "flat list of integers")


def test_cifar_batch_larger_than_the_format_is_refused_unread(tmp_path):
    big = tmp_path / "test_batch"
    with open(big, "wb") as f:
        f.truncate(MAX_BATCH_BYTES + 1)  # sparse: nothing to read, and nothing is read
    with pytest.raises(DataError) as err:
        read_batch(big)
    one_line(err.value, "test_batch", "allowed: at most 64 MiB")


def test_cifar_fifo_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "test_batch")
    with deadline(10):
        with pytest.raises(DataError, match="not a regular file"):
            read_batch(tmp_path / "test_batch")
        with pytest.raises(DataError, match="missing test_batch"):
            load_dataset("cifar10", root=tmp_path, split="test")


@HOSTILE
@given(blob=mutations(py2_batch(*_images(np.random.default_rng(0), 2), b"test_batch")))
def test_property_mutated_cifar_batches(blob, tmp_path):
    (tmp_path / "test_batch").write_bytes(blob)
    with deadline(20):
        try:
            x, y = read_batch(tmp_path / "test_batch")
        except DataError as exc:
            one_line(exc, "test_batch")
            return
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and y.shape == (len(x),) and y.dtype == np.int32


# -- .npy clips and videos ----------------------------------------------------------------------
def _npy_bytes(array) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("name,blob,needle", [
    ("npz named npy", None, "not a .npy array"),
    ("malformed header", b"\x93NUMPY\x01\x00\x10\x00{'descr': '|u1',}\n", "not a .npy array"),
    ("header beyond the data", _npy_bytes(np.zeros((2, 4, 4, 3), np.uint8))[:-10], "truncated"),
    ("huge declared shape", None, "truncated"),
    ("zero-height frames", _npy_bytes(np.zeros((4, 0, 8, 3), np.uint8)), "frames of 0x8 pixels"),
    ("object array", None, "array object"),
])
def test_npy_clips_refused_with_one_line(name, blob, needle, tmp_path):
    path = tmp_path / "clip.npy"
    if name == "npz named npy":
        np.savez(tmp_path / "x.npz", a=np.zeros((2, 4, 4, 3), np.uint8))
        (tmp_path / "x.npz").rename(path)
    elif name == "huge declared shape":  # 10**10 frames declared, 96 bytes present
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                     "shape": (10**10, 4, 4, 3)})
            f.write(bytes(96))
    elif name == "object array":
        np.save(path, np.array([None, 1], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(blob)
    with pytest.raises(DataError) as err:
        load_dataset("npy-clips", root=tmp_path, frames=2, resolution=4)
    one_line(err.value, "clip.npy", needle)


@HOSTILE
@given(blob=mutations(_npy_bytes(np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3))))
def test_property_mutated_npy_clips(blob, tmp_path):
    (tmp_path / "clip.npy").write_bytes(blob)
    with deadline(20):
        try:
            ds = load_dataset("npy-clips", root=tmp_path, frames=2, resolution=4)
        except DataError as exc:
            one_line(exc, "clip.npy")
            return
    assert ds.x.shape == (1, 2, 4, 4, 3)


def _png_bytes() -> bytes:
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buf, format="PNG")
    return buf.getvalue()


@HOSTILE
@given(blob=mutations(_png_bytes()))
def test_property_mutated_images(blob, tmp_path):
    (tmp_path / "a.png").write_bytes(blob)
    with deadline(20):
        try:
            ds = load_dataset("imagefolder", root=tmp_path, resolution=4)
        except DataError as exc:
            one_line(exc, "a.png")
            return
    assert ds.x.shape == (1, 4, 4, 3)


def test_video_with_non_utf8_metadata_loads(tmp_path):
    """Its metadata is never used: bytes that are not UTF-8 there do not stop the pixels."""
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "QQQQQQQQ"
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    path.write_bytes(path.read_bytes().replace(b"QQQQQQQQ", b"\xff\xfe\xff\xfeQQQQ"))
    ds = load_dataset("videofolder", root=tmp_path, frames=2, resolution=8)
    assert ds.x.shape == (1, 2, 8, 8, 3)


# -- folders: symbolic links and special files --------------------------------------------------
def _png(path: Path, level: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), level, np.uint8)).save(path)


def test_links_out_of_the_dataset_folder_are_refused_unless_asked_for(tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _png(root / "a" / "0.png")
    _png(outside / "cls" / "1.png")
    _png(outside / "loose.png")
    (root / "b").symlink_to(outside / "cls")  # a class folder elsewhere
    monkeypatch.delenv(FOLLOW_ENV, raising=False)
    with pytest.raises(DataError) as err:
        load_dataset("imagefolder", root=root, resolution=4)
    one_line(err.value, "root/b", "outside the dataset folder", FOLLOW_ENV)
    (root / "b").unlink()
    (root / "a" / "1.png").symlink_to(outside / "loose.png")  # a file elsewhere
    with pytest.raises(DataError, match="a/1.png: a symbolic link to .*outside"):
        load_dataset("imagefolder", root=root, resolution=4)
    monkeypatch.setenv(FOLLOW_ENV, "1")
    assert len(load_dataset("imagefolder", root=root, resolution=4)) == 2


def test_links_inside_the_dataset_folder_are_followed_once(tmp_path, monkeypatch):
    monkeypatch.delenv(FOLLOW_ENV, raising=False)
    root = tmp_path / "root"
    _png(root / "a" / "0.png")
    _png(root / "b" / "sub" / "1.png")
    (root / "a" / "again").symlink_to(root / "b" / "sub")  # inside: followed
    (root / "b" / "sub" / "loop").symlink_to(root / "b")  # a loop ends
    ds = load_dataset("imagefolder", root=root, resolution=4)
    assert ds.classes == ("a", "b") and sorted(ds.y.tolist()) == [0, 0, 1]


def test_special_entries_are_counted_and_reported(tmp_path, capsys):
    _png(tmp_path / "a" / "0.png")
    os.mkfifo(tmp_path / "a" / "fifo.png")
    (tmp_path / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with deadline(10):
        ds = load_dataset("imagefolder", root=tmp_path, resolution=4)
    assert len(ds) == 1 and ds.skipped == {"FIFO": 1, "dangling link": 1}
    err = capsys.readouterr().err
    assert "skipped 1 FIFO, 1 dangling link" in err and "warning" in err


# -- checkpoints -----------------------------------------------------------------------------------
WEIGHTS = {"a/weight": np.ones((2, 3), np.float32), "b/bias": np.zeros(3, np.float32)}
SHAPES = {k: v.shape for k, v in WEIGHTS.items()}


def _checkpoint(tmp_path, name="c") -> Path:
    """A fresh checkpoint directory (hypothesis runs many examples in one tmp_path)."""
    return checkpoint.write(Path(tempfile.mkdtemp(dir=tmp_path)) / name, WEIGHTS, {"arch": "rin"})


def _reseal(path: Path, meta: dict | None = None):
    """Recompute the sha256 in meta.json, as an attacker who edits the weights would."""
    meta = meta or json.loads((path / "meta.json").read_text())
    meta["sha256"] = {"weights.npz": file_sha256(path / "weights.npz")}
    (path / "meta.json").write_text(json.dumps(meta))


def _meta(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())


@pytest.mark.parametrize("name,edit,needle", [
    ("meta is a list", lambda p: (p / "meta.json").write_text("[1, 2]"), "a JSON list; allowed: a JSON object"),
    ("no sha256", lambda p: (p / "meta.json").write_text(json.dumps({**_meta(p), "sha256": None})), "sha256 is None"),
    ("sha256 lacks the file", lambda p: (p / "meta.json").write_text(json.dumps({**_meta(p), "sha256": {}})),
     "sha256 is {}"),
    ("nested thousands deep", lambda p: (p / "meta.json").write_text("[" * 100_000 + "]" * 100_000), "RecursionError"),
    ("has_ema a string", lambda p: (p / "meta.json").write_text(json.dumps({**_meta(p), "has_ema": "yes"})),
     "has_ema is 'yes'"),
    ("config a list", lambda p: (p / "meta.json").write_text(json.dumps({**_meta(p), "config": []})), "config is []"),
    ("truncated npz", lambda p: ((p / "weights.npz").write_bytes((p / "weights.npz").read_bytes()[:200]), _reseal(p)),
     "weights.npz: not a readable np.savez archive"),
    ("object array", lambda p: (np.savez(p / "weights.npz", a=np.array([None], dtype=object)), _reseal(p)),
     "dtype object; allowed: float32"),
    ("float64 array", lambda p: (np.savez(p / "weights.npz", a=np.zeros(3)), _reseal(p)), "dtype float64"),
])
def test_damaged_checkpoints_are_one_checkpoint_error(name, edit, needle, tmp_path):
    path = _checkpoint(tmp_path)
    edit(path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read(path)
    one_line(err.value, str(path), needle)


def test_a_compressed_weights_bomb_is_refused_before_it_expands(tmp_path):
    """3 MB on disk, 256 MiB declared: refused from the headers, with no allocation of its size."""
    path = _checkpoint(tmp_path)
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.float32))
    header["shape"] = (64 * 2**20,)
    with zipfile.ZipFile(path / "weights.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("a/weight.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(2**20)
            for _ in range(256):
                member.write(zeros)
    assert (path / "weights.npz").stat().st_size < 3 * 2**20
    _reseal(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read(path)
    one_line(err.value, "weights.npz", "compressed")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 2**10  # KiB: < 100 MiB grown


def test_a_stored_member_claiming_more_than_the_file_is_refused(tmp_path):
    path = _checkpoint(tmp_path)
    with zipfile.ZipFile(path / "weights.npz", "w", zipfile.ZIP_STORED) as zf:
        with zf.open("a/weight.npy", "w") as member:  # a declared shape larger than the data
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (2, 99)})
            member.write(bytes(24))
    _reseal(path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read(path)
    one_line(err.value, "weights.npz", "declares shape (2, 99)")


def test_arrays_are_checked_against_the_architecture_before_reading(tmp_path):
    path = _checkpoint(tmp_path)
    assert set(checkpoint.read(path, expect=SHAPES).weights) == set(WEIGHTS)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read(path, expect={**SHAPES, "a/weight": (3, 2)})
    one_line(err.value, "1 array(s) of the wrong shape: a/weight (2, 3) (the model's: (3, 2))")
    with pytest.raises(checkpoint.CheckpointError, match="1 array\\(s\\) the model does not have: b/bias"):
        checkpoint.read(path, expect={"a/weight": (2, 3)})
    with pytest.raises(checkpoint.CheckpointError, match="1 of the model's array\\(s\\) missing: c"):
        checkpoint.read(path, expect={**SHAPES, "c": (1,)})
    with pytest.raises(checkpoint.CheckpointError, match="written for arch 'rin', the case is 'dit'"):
        checkpoint.read(path, expect=SHAPES, arch="dit")


meta_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=8)


@HOSTILE
@given(key=st.sampled_from(["format", "sha256", "has_ema", "arch", "config", "step"]), value=meta_values)
def test_property_hostile_meta_json(key, value, tmp_path):
    path = _checkpoint(tmp_path, "m")
    (path / "meta.json").write_text(json.dumps({**_meta(path), key: value}))
    try:
        ckpt = checkpoint.read(path, expect=SHAPES)
    except checkpoint.CheckpointError as exc:
        one_line(exc, str(path))
        return
    assert set(ckpt.weights) == set(WEIGHTS)


@pytest.fixture(scope="module")
def weights_blob(tmp_path_factory) -> bytes:
    return (_checkpoint(tmp_path_factory.mktemp("w")) / "weights.npz").read_bytes()


@HOSTILE
@given(data=st.data())
def test_property_mutated_weights_resealed(data, weights_blob, tmp_path):
    """An attacker edits weights.npz and fixes the sha256 in meta.json: still one CheckpointError."""
    path = _checkpoint(tmp_path, "w")
    (path / "weights.npz").write_bytes(data.draw(mutations(weights_blob)))
    _reseal(path)
    with deadline(20):
        try:
            ckpt = checkpoint.read(path, expect=SHAPES)
        except checkpoint.CheckpointError as exc:
            one_line(exc, "weights.npz")
            return
    assert {k: v.shape for k, v in ckpt.weights.items()} == SHAPES
