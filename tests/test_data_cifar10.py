"""CIFAR-10 python batches: fixtures written byte-for-byte as the official files are (Python 2
cPickle protocol 2: py2 str keys, numpy.core.multiarray._reconstruct), loaded back; the
restricted unpickler refuses a crafted pickle without running it."""

import os
import pickle
import struct

import numpy as np
import pytest

from bench.data import DataError, load_dataset
from bench.data.cifar10 import read_batch


def _str(b: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING / BINSTRING
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _int(i: int) -> bytes:
    return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _ndarray_uint8(a: np.ndarray) -> bytes:
    """numpy 1.x's protocol-2 pickle of a C-contiguous uint8 array, as in the official batches."""
    dtype = (b"cnumpy\ndtype\n" + _tuple(_str(b"u1"), _int(0), _int(1)) + b"R"
             + _tuple(_int(3), _str(b"|"), b"N", b"N", b"N", _int(-1), _int(-1), _int(0)) + b"b")
    return (b"cnumpy.core.multiarray\n_reconstruct\n"
            + _tuple(b"cnumpy\nndarray\n", _tuple(_int(0)), _str(b"b")) + b"R"
            + _tuple(_int(1), _tuple(*[_int(s) for s in a.shape]), dtype, b"\x89", _str(a.tobytes())) + b"b")


def py2_batch(data: np.ndarray, labels, name: bytes) -> bytes:
    """{'batch_label', 'labels', 'data', 'filenames'} as cPickle.dump(d, f, 2) writes it."""
    items = [(b"batch_label", _str(name)),
             (b"labels", b"](" + b"".join(_int(int(v)) for v in labels) + b"e"),
             (b"data", _ndarray_uint8(data)),
             (b"filenames", b"](" + b"".join(_str(b"img_%d.png" % i) for i in range(len(labels))) + b"e")]
    return b"\x80\x02}(" + b"".join(_str(k) + v for k, v in items) + b"u."


def _images(rng, n):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return data, rng.integers(0, 10, n)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """ROOT/cifar-10-batches-py/ with 5 train batches of 3 and a test batch of 2; image 0 of
    batch 1 pure red (R=255, G=B=0 in the planar 1024/1024/1024 layout)."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = _images(rng, 2 if name == "test_batch" else 3)
        if name == "data_batch_1":
            data[0] = np.r_[np.full(1024, 255), np.zeros(2048)].astype(np.uint8)
            labels[0] = 7
        (folder / name).write_bytes(py2_batch(data, labels, name.encode()))
        batches[name] = (data, labels)
    return root, batches


def test_fixture_is_a_real_numpy_pickle(cifar):
    """Oracle for the writer: the unrestricted loader the CIFAR page documents reads it back."""
    root, batches = cifar
    with open(root / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert sorted(d) == [b"batch_label", b"data", b"filenames", b"labels"]
    np.testing.assert_array_equal(d[b"data"], batches["data_batch_2"][0])
    assert d[b"labels"] == list(batches["data_batch_2"][1])


def test_pixels_layout_and_labels(cifar):
    root, batches = cifar
    ds = load_dataset("cifar10", root=root)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    data = np.concatenate([t[0] for t in train])
    labels = np.concatenate([t[1] for t in train])
    assert ds.x.shape == (15, 32, 32, 3) and ds.x.dtype == np.float32 and ds.num_classes == 10
    assert ds.classes[7] == "horse" and ds.card["checksum"]["md5"] == "c58f30108f718f92721af3b95e74349a"
    # planar rows: value of (row r, column c, channel ch) is data[ch * 1024 + r * 32 + c]
    expected = {data[i].reshape(3, 32, 32).transpose(1, 2, 0).tobytes(): labels[i] for i in range(15)}
    got = np.rint((ds.x + 1) * 127.5).astype(np.uint8)
    assert sorted(expected) == sorted(g.tobytes() for g in got)
    for g, y in zip(got, ds.y):
        assert expected[g.tobytes()] == y
    red = [i for i, g in enumerate(got) if (g[..., 0] == 255).all() and (g[..., 1:] == 0).all()]
    assert len(red) == 1 and ds.y[red[0]] == 7 and (ds.x[red[0]] == [1.0, -1.0, -1.0]).all()


def test_test_split_limit_and_seed(cifar):
    root, batches = cifar
    test = load_dataset("cifar10", root=root / "cifar-10-batches-py", split="test")
    assert sorted(test.y.tolist()) == sorted(batches["test_batch"][1].tolist())
    a = load_dataset("cifar10", root=root, limit=4, seed=3)
    again = load_dataset("cifar10", root=root, limit=4, seed=3)
    longer = load_dataset("cifar10", root=root, limit=9, seed=3)
    other = load_dataset("cifar10", root=root, limit=4, seed=4)
    np.testing.assert_array_equal(a.x, again.x)
    np.testing.assert_array_equal(a.x, longer.x[:4])
    assert not np.array_equal(a.x, other.x)


def test_downsample_and_luminance(cifar):
    root, _ = cifar
    grey = load_dataset("cifar10", root=root, resolution=16, channels=1)
    assert grey.x.shape == (15, 16, 16, 1)
    # the pure-red image: ITU-R 601-2 luminance 0.299 * 255 -> 76 everywhere, resize keeps a constant
    red = load_dataset("cifar10", root=root, channels=1)
    values = np.rint((red.x + 1) * 127.5)
    assert any((v == 76).all() for v in values)
    assert any((v == 76).all() for v in np.rint((grey.x + 1) * 127.5))
    with pytest.raises(DataError, match=r"resolution=64 not available.*allowed: 1\.\.32"):
        load_dataset("cifar10", root=root, resolution=64)


def _evil_payload(marker):
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    return Evil()


def _py2_evil(marker) -> bytes:
    """The official batch layout with b'data' replaced by a call to os.system."""
    call = b"cos\nsystem\n" + _tuple(_str(f"touch {marker}".encode())) + b"R"
    return b"\x80\x02}(" + _str(b"labels") + b"](K\x00e" + _str(b"data") + call + b"u."


@pytest.mark.parametrize("writer", ["pickle.dumps", "py2"])
def test_crafted_pickle_is_refused_and_not_run(tmp_path, writer):
    marker = tmp_path / "pwned"
    if writer == "py2":
        blob = _py2_evil(marker)
    else:
        blob = pickle.dumps({b"data": _evil_payload(marker), b"labels": [0]}, protocol=4)
    pickle.loads(blob, encoding="bytes")  # control: the payload is live under the unrestricted loader
    assert marker.exists()
    marker.unlink()
    (tmp_path / "data_batch_1").write_bytes(blob)
    with pytest.raises(DataError, match=r"data_batch_1: not a CIFAR-10 python batch.*global (posix|os)\.system"):
        read_batch(tmp_path / "data_batch_1")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    np.array([1, "a"], dtype=object),  # an object array would unpickle its elements
    np.zeros(4, np.float64),  # not the format's uint8
])
def test_other_numpy_pickles_are_refused(tmp_path, payload):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": payload, b"labels": [0] * 4}, protocol=4))
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python batch"):
        read_batch(tmp_path / "test_batch")


def test_python3_repickled_batch_loads(tmp_path):
    """A batch re-saved by Python 3 / numpy 2 (protocol 4: bytes keys, numpy._core names)."""
    data, labels = _images(np.random.default_rng(1), 3)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels.tolist()}, protocol=4))
    x, y = read_batch(tmp_path / "test_batch")
    np.testing.assert_array_equal(x, data.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y, labels)


def test_format_errors(tmp_path, cifar):
    root, _ = cifar
    with pytest.raises(DataError, match="nowhere: not a directory"):
        load_dataset("cifar10", root=tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"missing data_batch_1, data_batch_2.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=tmp_path)
    (tmp_path / "test_batch").write_text("label,pixels\n")
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python batch"):
        load_dataset("cifar10", root=tmp_path, split="test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"fine_labels": [1]}, protocol=4))
    with pytest.raises(DataError, match=r"expected a dict with b'data'"):
        load_dataset("cifar10", root=tmp_path, split="test")
    with pytest.raises(DataError, match=r"limit=16 exceeds the 15 examples"):
        load_dataset("cifar10", root=root, limit=16)
