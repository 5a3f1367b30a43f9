"""Class-per-folder image trees (PNG, JPEG), video folders (mp4 written with PyAV) and .npy clips:
fixtures in the real on-disk formats, loaded back with pixel, geometry and label checks."""

import os

import av
import numpy as np
import pytest
from PIL import Image

from bench.data import DataError, load_dataset

GREEN, BLUE = (0, 255, 0), (0, 0, 255)


def _banded(w, h, centre):
    """A w x h RGB image whose centred min(w, h) square is `centre` and the rest red."""
    a = np.zeros((h, w, 3), np.uint8)
    a[...] = (255, 0, 0)
    s = min(w, h)
    top, left = (h - s) // 2, (w - s) // 2
    a[top:top + s, left:left + s] = centre
    return a


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """ROOT/train/{cat (PNG, green centre), dog (JPEG, blue centre)}, ROOT/val/cat, ROOT/flat."""
    root = tmp_path_factory.mktemp("images")
    for i, (w, h) in enumerate([(60, 40), (40, 60), (33, 30)]):
        for split in ("train", "val"):
            (root / split / "cat").mkdir(parents=True, exist_ok=True)
            Image.fromarray(_banded(w, h, GREEN)).save(root / split / "cat" / f"c{i}.png")
        (root / "train" / "dog" / "sub").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_banded(w, h, BLUE)).save(root / "train" / "dog" / "sub" / f"d{i}.jpg", quality=95, subsampling=0)
    (root / "train" / "dog" / "notes.txt").write_text("ignored: not an image extension")
    (root / "flat").mkdir()
    rng = np.random.default_rng(0)
    random = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(random).save(root / "flat" / "r.png")
    return root, random


def test_labels_centre_crop_and_resize(tree):
    root, _ = tree
    ds = load_dataset("imagefolder", root=root, resolution=8)
    assert ds.classes == ("cat", "dog") and ds.num_classes == 2 and ds.x.shape == (6, 8, 8, 3)
    pixels = (ds.x + 1) * 127.5
    for image, label in zip(pixels, ds.y):
        # the red borders are cropped away exactly; bicubic keeps a constant image constant
        want = GREEN if label == 0 else BLUE
        tolerance = 0.5 if label == 0 else 12  # PNG is lossless; JPEG (4:4:4, quality 95) nearly
        np.testing.assert_allclose(image, np.broadcast_to(want, image.shape), atol=tolerance)
    assert sorted(ds.y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_crop_geometry_exact(tree):
    """50 x 30 image: crop columns 10..39 with no resize at resolution 30, pixel for pixel."""
    root, random = tree
    ds = load_dataset("imagefolder", root=root / "flat", resolution=30)
    assert ds.y is None and ds.num_classes == 0 and ds.classes == ()
    np.testing.assert_array_equal(np.rint((ds.x[0] + 1) * 127.5), random[:, 10:40])
    grey = load_dataset("imagefolder", root=root / "flat", resolution=30, channels=1)
    lum = np.asarray(Image.fromarray(random[:, 10:40]).convert("L"))
    np.testing.assert_array_equal(np.rint((grey.x[0, ..., 0] + 1) * 127.5), lum)


def test_splits_seed_and_limit(tree):
    root, _ = tree
    val = load_dataset("imagefolder", root=root, split="val", resolution=4)
    assert val.classes == ("cat",) and len(val) == 3
    a = load_dataset("imagefolder", root=root, resolution=4, limit=3, seed=5)
    b = load_dataset("imagefolder", root=root, resolution=4, limit=6, seed=5)
    np.testing.assert_array_equal(a.x, b.x[:3])
    np.testing.assert_array_equal(a.y, b.y[:3])
    with pytest.raises(DataError, match=r"test: not a directory \(split 'test' of imagefolder"):
        load_dataset("imagefolder", root=root, split="test")
    with pytest.raises(DataError, match="limit=7 exceeds the 6 files found"):
        load_dataset("imagefolder", root=root, limit=7)


def test_image_errors(tmp_path):
    with pytest.raises(DataError, match="missing: not a directory"):
        load_dataset("imagefolder", root=tmp_path / "missing")
    (tmp_path / "a").mkdir()
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="holds both class folders"):
        load_dataset("imagefolder", root=tmp_path)
    (tmp_path / "b.png").unlink()
    with pytest.raises(DataError, match=r"a: class folder has no files with extensions \.jpg"):
        load_dataset("imagefolder", root=tmp_path)
    (tmp_path / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x.png: not a readable image"):
        load_dataset("imagefolder", root=tmp_path)
    with pytest.raises(DataError, match=r"channels=4 not available; allowed: 1 \(luminance\), 3 \(RGB\)"):
        load_dataset("imagefolder", root=tmp_path, channels=4)


def _write_mp4(path, frames, w=48, h=32):
    """Frame k: a uniform grey of level 20 k + 30 with white side bands outside the centred square."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "1"}
        for k in range(frames):
            a = np.full((h, w, 3), 20 * k + 30, np.uint8)
            a[:, :(w - h) // 2] = a[:, (w + h) // 2:] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for cls, n in (("jump", 10), ("run", 12)):
        (root / cls).mkdir()
        _write_mp4(root / cls / f"{cls}.mp4", n)
    return root


def test_video_frames_levels_and_labels(videos):
    ds = load_dataset("videofolder", root=videos, resolution=16, frames=6)
    assert ds.x.shape == (2, 6, 16, 16, 3) and ds.classes == ("jump", "run")
    levels = (ds.x + 1) * 127.5
    # yuv420p round trip of greys: within a few levels; the white border is cropped away
    for clip in levels:
        np.testing.assert_allclose(clip.mean(axis=(1, 2, 3)), 20 * np.arange(6) + 30, atol=4)
        assert clip.max() < 20 * 5 + 30 + 12
    assert sorted(ds.y.tolist()) == [0, 1]
    with pytest.raises(DataError, match="frames=16 not available, the clip has 10"):  # the card's default
        load_dataset("videofolder", root=videos, resolution=8)


def test_video_lossless_centre_crop_exact(tmp_path):
    """FFV1 in Matroska (lossless RGB): the decoded, centre-cropped frames are the written
    pixels, columns 3..22 of a 26-wide frame, for a flat (unlabeled) folder."""
    frames = np.random.default_rng(0).integers(0, 256, (5, 20, 26, 3), dtype=np.uint8)
    with av.open(str(tmp_path / "clip.mkv"), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 26, 20, "bgr0"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    ds = load_dataset("videofolder", root=tmp_path, resolution=20, frames=4)
    assert ds.y is None and ds.num_classes == 0
    np.testing.assert_array_equal(np.rint((ds.x[0] + 1) * 127.5), frames[:4, :, 3:23])


def test_video_errors(videos, tmp_path):
    with pytest.raises(DataError, match=r"jump.mp4: frames=11 not available, the clip has 10; allowed: 1\.\.10"):
        load_dataset("videofolder", root=videos, frames=11, resolution=8)
    (tmp_path / "broken.mp4").write_text("not a video")
    with pytest.raises(DataError, match="broken.mp4: not a decodable video"):
        load_dataset("videofolder", root=tmp_path, frames=2)


def test_npy_clips_exact(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 20, 24, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (7, 20, 20, 1), dtype=np.uint8)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "rgb.npy", rgb)
    np.save(tmp_path / "b" / "grey.npy", grey)
    ds = load_dataset("npy-clips", root=tmp_path, resolution=20, frames=4)
    by_label = dict(zip(ds.y.tolist(), np.rint((ds.x + 1) * 127.5).astype(np.uint8)))
    np.testing.assert_array_equal(by_label[0], rgb[:4, :, 2:22])  # centre crop of width 24
    np.testing.assert_array_equal(by_label[1], np.repeat(grey[:4], 3, axis=-1))  # grey replicated
    with pytest.raises(DataError, match=r"rgb.npy: frames=6 not available, the clip has 5"):
        load_dataset("npy-clips", root=tmp_path, resolution=20, frames=6)


def test_npy_wrong_format_and_pickled_object(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(DataError, match=r"f.npy: array float32 \(4, 8, 8, 3\); allowed: uint8 \(T, H, W, C\)"):
        load_dataset("npy-clips", root=tmp_path, frames=2)
    os.remove(tmp_path / "f.npy")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    np.save(tmp_path / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="evil.npy: array object"):
        load_dataset("npy-clips", root=tmp_path, frames=1)
    assert not marker.exists()
