"""Feature extractors: uint8 samples in, float64 features out. One pinned network per feature
space, whichever backend made the samples.

- `inception`: clean-fid's "clean" mode: PIL bicubic resize on float to 299x299 outside the
  network (clean-fid's own resizer), then NVIDIA's TorchScript Inception (2048-d pool features).
- `i3d`: StyleGAN-V's TorchScript I3D, first 16 frames of each clip, 400-d features.
- `effnet`: EfficientNet-Lite0 from the wheel, 1280-d pooled features (an offline PROXY space).
- `effnet-video`: per-frame effnet features averaged over time, concatenated with the mean
  absolute frame-to-frame feature difference (2560-d; a temporal PROXY).
"""
from __future__ import annotations

import dataclasses
import io
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from bench.quality import effnet, weights
from bench.quality.weights import MetricError

FVD_FRAMES = 16


@dataclasses.dataclass(frozen=True)
class Extractor:
    space: str                     # feature-space name written next to every score
    dim: int
    video: bool                    # expects (N, T, H, W, C) clips rather than (N, H, W, C)
    fn: Callable[[np.ndarray], np.ndarray]

    def __call__(self, samples: np.ndarray, batch: int = 64) -> np.ndarray:
        samples = _check_uint8(samples, self.video, self.space)
        out = [self.fn(samples[i:i + batch]) for i in range(0, len(samples), batch)]
        return np.concatenate(out).astype(np.float64)


def to_uint8(x) -> np.ndarray:
    """[-1, 1] floats -> uint8 exactly as diffusion sample writers do before saving a PNG."""
    return np.clip(np.asarray(x, np.float32) * 127.5 + 128.0, 0, 255).astype(np.uint8)


def _check_uint8(samples, video: bool, space: str) -> np.ndarray:
    samples = np.asarray(samples)
    ndim = 5 if video else 4
    if samples.dtype != np.uint8 or samples.ndim != ndim or samples.shape[-1] not in (1, 3):
        kind = "(N, T, H, W, C)" if video else "(N, H, W, C)"
        raise MetricError(f"{space} features need uint8 {kind} with C in (1, 3), got {samples.dtype} {samples.shape}")
    return samples


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def inception(spec: weights.WeightSpec = weights.INCEPTION, environ=None) -> Extractor:
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import build_resizer

    class FromBytes(InceptionV3W):  # clean-fid's wrapper, its TorchScript loaded from the checked bytes
        def __init__(self, data: bytes):
            torch.nn.Module.__init__(self)
            self.base = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
            self.layers, self.resize_inside = self.base.layers, False

    # channels_last + inference_mode: same network and inputs as clean-fid's batch call (only the
    # float summation order differs, ~1e-6 relative); ~1.4x faster on CPU
    model = FromBytes(weights.checked_bytes(spec, environ)).eval().to(memory_format=torch.channels_last)
    resize = build_resizer("clean")

    def fn(x):
        batch = np.stack([resize(img) for img in _rgb(x)])  # float32 in [0, 255], 299x299
        with torch.inference_mode():
            return model(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()  # NHWC memory = channels_last
    return Extractor("inception-2015-12-05 pool3 (clean-fid clean mode)", 2048, False, fn)


def i3d(spec: weights.WeightSpec = weights.I3D, environ=None) -> Extractor:
    detector = torch.jit.load(io.BytesIO(weights.checked_bytes(spec, environ)), map_location="cpu").eval()

    def fn(x):
        if x.shape[1] < FVD_FRAMES:
            raise MetricError(f"fvd needs clips of at least {FVD_FRAMES} frames, got {x.shape[1]}")
        clips = torch.from_numpy(np.ascontiguousarray(_rgb(x[:, :FVD_FRAMES]))).permute(0, 4, 1, 2, 3)
        with torch.no_grad():
            return detector(clips, rescale=True, resize=True, return_features=True).numpy()
    return Extractor(f"i3d-kinetics400 logits, first {FVD_FRAMES} frames", 400, True, fn)


def _effnet_frames(model) -> Callable[[np.ndarray], torch.Tensor]:
    def frames(x):  # (B, H, W, C) uint8 -> (B, 1280)
        t = torch.from_numpy(np.ascontiguousarray(_rgb(x))).permute(0, 3, 1, 2).float()
        t = F.interpolate(t, size=(effnet.RESOLUTION,) * 2, mode="bicubic", antialias=True, align_corners=False)
        with torch.inference_mode():
            return model.features((t.clamp(0, 255) - 127.0) / 128.0)  # TF Lite's mean 127, std 128
    return frames


def effnet_images() -> Extractor:
    frames = _effnet_frames(effnet.load_pretrained().to(memory_format=torch.channels_last))
    return Extractor("efficientnet-lite0 pooled (proxy)", effnet.FEATURE_DIM, False, lambda x: frames(x).numpy())


def temporal_features(per_frame: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, 2D): time mean, and mean |f_{t+1} - f_t| (reacts to broken motion)."""
    motion = (per_frame[:, 1:] - per_frame[:, :-1]).abs().mean(dim=1)
    return torch.cat([per_frame.mean(dim=1), motion], dim=1)


def effnet_video() -> Extractor:
    frames = _effnet_frames(effnet.load_pretrained().to(memory_format=torch.channels_last))

    def fn(x):
        if x.shape[1] < 2:
            raise MetricError(f"fd-effnet-video needs clips of at least 2 frames, got {x.shape[1]}")
        f = frames(x.reshape(-1, *x.shape[2:])).reshape(x.shape[0], x.shape[1], -1)
        return temporal_features(f).numpy()
    return Extractor("efficientnet-lite0 per-frame mean + mean |frame diff| (proxy)", 2 * effnet.FEATURE_DIM, True, fn)
