"""Feature extractors and weight loading. The real Inception / I3D weights are NOT in CI: these
tests build small TorchScript stand-ins to exercise loading, the sha256 check and the errors,
and check the in-memory clean-mode path against clean-fid's own folder path on PNG files."""
import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image

from bench.quality import features, metrics, weights
from bench.quality.weights import MetricError


class _InceptionLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.proj = torch.nn.Linear(48, 2048)

    def forward(self, x):
        return self.proj(self.pool(x).flatten(1))[:, :, None, None]


class _InceptionStandIn(torch.nn.Module):
    """Same call surface as NVIDIA's file: a `layers` submodule on normalized 299x299 input."""

    def __init__(self):
        super().__init__()
        self.layers = _InceptionLayers()

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


class _I3DStandIn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 16, 400)

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        assert rescale and resize and return_features
        return self.proj(x.float().mean(dim=(3, 4)).flatten(1) / 255.0)  # (B, 3 * T) -> 400


def _save(module, path):
    torch.manual_seed(0)
    torch.jit.script(module).save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    return _save(_InceptionStandIn(), tmp_path_factory.mktemp("inc") / weights.INCEPTION.filename)


def _spec_for(spec, path):
    return dataclasses.replace(spec, sha256=weights.file_sha256(path))


def test_missing_variable_missing_file_and_wrong_sha_name_the_variable(tmp_path, inception_file):
    with pytest.raises(MetricError, match="DIFFBENCH_INCEPTION is not set"):
        weights.resolve(weights.INCEPTION, environ={})
    with pytest.raises(MetricError, match=r"DIFFBENCH_INCEPTION=.*no such file"):
        weights.resolve(weights.INCEPTION, environ={"DIFFBENCH_INCEPTION": str(tmp_path / "nope.pt")})
    # the stand-in is not the published file: its digest must be refused
    with pytest.raises(MetricError, match=r"DIFFBENCH_INCEPTION=.*sha256 [0-9a-f]{64} is not f58cb9b6"):
        features.inception(environ={"DIFFBENCH_INCEPTION": inception_file})
    with pytest.raises(MetricError, match="DIFFBENCH_I3D is not set"):
        features.i3d(environ={})


def test_clean_mode_in_memory_equals_clean_fid_folder_path(tmp_path, inception_file):
    from cleanfid.fid import get_folder_features
    rng = np.random.default_rng(0)
    samples = features.to_uint8(rng.uniform(-1.1, 1.1, (5, 20, 24, 3)))
    for i, img in enumerate(samples):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    spec = _spec_for(weights.INCEPTION, inception_file)
    ex = features.inception(spec, environ={spec.env: inception_file})
    ours = ex(samples, batch=2)
    from cleanfid.inception_torchscript import InceptionV3W
    net = InceptionV3W(os.path.dirname(inception_file), download=False).eval()
    folder = get_folder_features(str(tmp_path), net, num_workers=0, batch_size=3, device=torch.device("cpu"),
                                 mode="clean", verbose=False)
    assert ours.shape == (5, 2048)
    np.testing.assert_allclose(ours, folder, rtol=1e-5, atol=1e-5)


def test_weights_load_from_the_bytes_that_were_hashed(tmp_path, inception_file, monkeypatch):
    """A file swapped between the sha256 check and the load is not what gets loaded: the checked
    bytes are (so the file's name no longer matters either)."""
    renamed = tmp_path / "inception.pt"
    renamed.write_bytes(open(inception_file, "rb").read())
    spec = _spec_for(weights.INCEPTION, inception_file)
    samples = np.random.default_rng(0).integers(0, 256, (2, 12, 12, 3), dtype=np.uint8)
    want = features.inception(spec, environ={spec.env: str(renamed)})(samples)
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.jit.script(_InceptionStandIn()).save(str(other))  # other weights, same call surface
    real_load = torch.jit.load

    def swap_then_load(f, *args, **kwargs):  # an attacker replaces the file after the check
        renamed.write_bytes(other.read_bytes())
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", swap_then_load)
    renamed = tmp_path / "published" / weights.INCEPTION.filename  # the name clean-fid's own loader wants
    renamed.parent.mkdir()
    renamed.write_bytes(open(inception_file, "rb").read())
    np.testing.assert_array_equal(features.inception(spec, environ={spec.env: str(renamed)})(samples), want)


def test_i3d_uses_the_first_16_frames(tmp_path):
    path = _save(_I3DStandIn(), tmp_path / "i3d_torchscript.pt")
    spec = _spec_for(weights.I3D, path)
    ex = features.i3d(spec, environ={spec.env: path})
    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, (3, 20, 8, 8, 3), dtype=np.uint8)
    changed = clips.copy()
    changed[:, 16:] = 0
    a, b = ex(clips), ex(changed)
    assert a.shape == (3, 400)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(MetricError, match="at least 16 frames"):
        ex(clips[:, :10])


def test_to_uint8_is_what_a_png_round_trip_keeps(tmp_path):
    x = np.linspace(-1.2, 1.2, 3 * 8 * 8).reshape(8, 8, 3)
    q = features.to_uint8(x)
    Image.fromarray(q).save(tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), q)
    assert features.to_uint8(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]


@pytest.fixture(scope="module")
def effnet_ex():
    return features.effnet_images()


def test_effnet_classifies_real_photos(effnet_ex):
    # ImageNet classes: 985 daisy, 652 military uniform
    import matplotlib
    from sklearn.datasets import load_sample_image
    from bench.quality import effnet
    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    photos = [load_sample_image("flower.jpg"), np.asarray(Image.open(hopper).convert("RGB"))]
    model = effnet.load_pretrained()
    x = torch.stack([torch.from_numpy(np.array(Image.fromarray(p).resize((224, 224), Image.BICUBIC))) for p in photos])
    with torch.no_grad():
        top = model((x.permute(0, 3, 1, 2).float() - 127.0) / 128.0).argmax(-1).tolist()
    assert top == [985, 652]
    feats = effnet_ex(np.stack([p[:200, :200] for p in photos]))
    assert feats.shape == (2, 1280) and np.isfinite(feats).all()


def test_temporal_statistic_sees_shuffled_frames_but_not_the_mean():
    f = torch.cumsum(torch.ones(2, 6, 4), dim=1)  # smooth motion in feature space
    shuffled = f[:, [3, 0, 5, 1, 4, 2]]
    a, b = features.temporal_features(f), features.temporal_features(shuffled)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert (b[:, 4:] > a[:, 4:]).all()


def test_score_reports_n_space_and_floor_and_rejects_bad_requests():
    flat = features.Extractor("pixels (test)", 12, False, lambda x: x.reshape(len(x), -1)[:, :12].astype(np.float64))
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 256, (40, 2, 2, 3), dtype=np.uint8)
    rows = metrics.score(ref[:20], ref, ["fd-effnet", "kid"], extractors={"effnet": flat})
    fd_row, kid_row = rows
    assert fd_row["value"] == pytest.approx(0.0, abs=1e-9) and fd_row["n"] == 20 and fd_row["floor"] > 0
    assert fd_row["proxy"] and fd_row["feature_space"] == "pixels (test)" and kid_row["metric"] == "kid"
    with pytest.raises(MetricError, match="needs 40"):
        metrics.score(ref[:20], ref[:30], ["kid"], extractors={"effnet": flat})
    with pytest.raises(MetricError, match="unknown metric 'fidd'"):
        metrics.score(ref[:5], ref, ["fidd"])
    with pytest.raises(MetricError, match="'fvd' is for videos"):
        metrics.score(ref[:5], ref, ["fvd"])
