"""A test-only architecture small enough to compile a jax training step in seconds: a conv, a dense
layer over channels and a conv, in both backends (the layers whose precision the policies set).

Importing this module registers `precision-tiny` (test only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from architectures import registry
from architectures.processes.config import GaussianConfig


@dataclass(frozen=True)
class TinyConfig:
    image_size: int = 8
    channels: int = 3
    width: int = 8
    num_classes: int = 0
    process: GaussianConfig = field(default_factory=GaussianConfig)

    @property
    def modality(self) -> str:
        return "image"

    def input_shapes(self, batch: int) -> dict:
        s = self.image_size
        return {"x": ((batch, s, s, self.channels), "float32"), "t": ((batch,), "float32")}


def forward_macs(config: TinyConfig, batch: int) -> dict:
    s, c, w = config.image_size, config.channels, config.width
    return {"conv": batch * s * s * 9 * (c * w + w * c), "linear": batch * s * s * w * w}


def _torch_model():
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, config: TinyConfig):
            super().__init__()
            self.conv_in = nn.Conv2d(config.channels, config.width, 3, padding=1)
            self.dense = nn.Linear(config.width, config.width)
            self.conv_out = nn.Conv2d(config.width, config.channels, 3, padding=1)

        def forward(self, x, t, y=None):
            h = torch.relu(self.conv_in(x)) * (1 + t[:, None, None, None])
            h = self.dense(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            return self.conv_out(torch.relu(h))

    return TinyNet


def _flax_model():
    import flax.linen as nn
    import jax.numpy as jnp

    class TinyNet(nn.Module):
        config: TinyConfig

        @nn.compact
        def __call__(self, x, t, y=None, train: bool = False):
            c = self.config
            h = nn.relu(nn.Conv(c.width, (3, 3), padding=1, name="conv_in")(x)) * (1 + t[:, None, None, None])
            h = nn.Dense(c.width, name="dense")(h)
            return nn.Conv(c.channels, (3, 3), padding=1, name="conv_out")(nn.relu(h)).astype(jnp.float32)

    return TinyNet


def __getattr__(name):  # the frameworks are imported only when a model class is asked for
    if name == "TorchTinyNet":
        return _torch_model()
    if name == "FlaxTinyNet":
        return _flax_model()
    raise AttributeError(name)


PRESETS = {"precision-tiny": registry.Preset(TinyConfig(), "ours: test-only")}

if "precision-tiny" not in registry.names(include_test_only=True):
    registry.register(registry.Entry(
        name="precision-tiny",
        config=f"{__name__}:TinyConfig",
        presets=f"{__name__}:PRESETS",
        backends={"torch": f"{__name__}:TorchTinyNet", "jax": f"{__name__}:FlaxTinyNet"},
        process="gaussian",
        flops=f"{__name__}:forward_macs",
        test_only=True,
        description="test-only: conv + dense + conv",
    ))
