"""Feature-network weights the user supplies: a local file named by an environment variable,
sha256-checked, never downloaded. A missing or wrong file is a MetricError naming the variable.

The pinned digests are the published files' (NVIDIA's TorchScript port of the TF FID Inception,
inception-2015-12-05.pt, as clean-fid and StyleGAN2-ADA use it; StyleGAN-V's I3D port
i3d_torchscript.pt). CI never has these files: its tests load small TorchScript stand-ins.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

from bench.records import file_sha256  # noqa: F401 - re-exported for the tests' stand-in digests


class MetricError(RuntimeError):
    """A quality metric cannot run (weights missing or wrong, input of the wrong shape); one line."""

    def __init__(self, message: str):
        from bench.safe_text import printable

        super().__init__(printable(message))


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    env: str       # environment variable holding the file's path
    filename: str  # the published file's name (clean-fid's loader wants it verbatim)
    sha256: str    # digest of the published file
    source: str    # where a user gets it


INCEPTION = WeightSpec(
    env="DIFFBENCH_INCEPTION",
    filename="inception-2015-12-05.pt",
    sha256="f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
    source="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
)
I3D = WeightSpec(
    env="DIFFBENCH_I3D",
    filename="i3d_torchscript.pt",
    sha256="bec6519f66ea534e953026b4ae2c65553c17bf105611c746d904657e5860a5e2",
    source="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt (StyleGAN-V)",
)


def resolve(spec: WeightSpec, environ=None) -> str:
    """The local path of spec's file (its digest checked), or a MetricError naming spec.env.
    To load the weights use `checked_bytes`: a path can be swapped after the check."""
    return _checked(spec, environ)[0]


def checked_bytes(spec: WeightSpec, environ=None) -> bytes:
    """spec's file, read once: the bytes whose sha256 was checked are the bytes to load."""
    return _checked(spec, environ)[1]


def _checked(spec: WeightSpec, environ) -> tuple[str, bytes]:
    environ = os.environ if environ is None else environ
    path = environ.get(spec.env)
    hint = f"set {spec.env} to a local copy of {spec.filename} (sha256 {spec.sha256}, from {spec.source})"
    if not path:
        raise MetricError(f"{spec.env} is not set: {hint}")
    if not os.path.isfile(path):
        raise MetricError(f"{spec.env}={path}: no such file; {hint}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MetricError(f"{spec.env}={path}: unreadable ({exc.strerror}); {hint}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise MetricError(f"{spec.env}={path}: sha256 {digest} is not {spec.sha256}; {hint}")
    return path, data
