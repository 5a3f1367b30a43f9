"""Test-only architectures with one deliberate defect each, to prove the conformance kit fails
on them: `kitfault-<bug>` for bug in BUGS ("ok" is the control). Importing registers them."""

from __future__ import annotations

from dataclasses import dataclass, field

from architectures import registry
from architectures.processes.config import GaussianConfig

BUGS = ("ok", "shape", "ignore_y", "rename", "nan", "tuple")


@dataclass(frozen=True)
class KitConfig:
    bug: str = "ok"
    size: int = 4
    channels: int = 2
    width: int = 8
    num_classes: int = 3
    process: GaussianConfig = field(default_factory=lambda: GaussianConfig(sample_steps=4))

    @property
    def modality(self) -> str:
        return "image"

    def input_shapes(self, batch: int) -> dict:
        s = self.size
        return {"x": ((batch, s, s, self.channels), "float32"), "t": ((batch,), "float32"), "y": ((batch,), "int32")}


def forward_macs(c: KitConfig, batch: int) -> dict:
    out = c.channels - (c.bug == "shape")
    return {"conv": batch * c.size ** 2 * 9 * (c.channels * c.width + c.width * out), "linear": batch * c.width}


def _torch():
    import torch
    from torch import nn

    class KitModel(nn.Module):
        def __init__(self, c: KitConfig):
            super().__init__()
            self.c = c
            self.conv_in = nn.Conv2d(c.channels, c.width, 3, padding=1)
            self.time = nn.Linear(1, c.width)
            self.label = nn.Embedding(c.num_classes + 1, c.width)
            self.conv_out = nn.Conv2d(c.width, c.channels - (c.bug == "shape"), 3, padding=1)

        def forward(self, x, t, y=None):
            emb = self.time(t[:, None]) + (0 if self.c.bug == "ignore_y" else self.label(y))
            h = self.conv_out(torch.tanh(self.conv_in(x) + emb[:, :, None, None]))
            h = h * float("nan") if self.c.bug == "nan" else h
            return (h, h) if self.c.bug == "tuple" else h

    return KitModel


def _flax():
    import flax.linen as nn
    import jax.numpy as jnp

    class KitModel(nn.Module):
        c: KitConfig

        def setup(self):
            c = self.c
            self.conv_in = nn.Conv(c.width, (3, 3), padding=1)
            self.time = nn.Dense(c.width)
            self.label = nn.Embed(c.num_classes + 1, c.width)
            out = nn.Conv(c.channels - (c.bug == "shape"), (3, 3), padding=1, name="conv_last" if c.bug == "rename" else None)
            if c.bug == "rename":
                self.conv_last = out
            else:
                self.conv_out = out

        def __call__(self, x, t, y=None, train=False):
            emb = self.time(t[:, None]) + (0 if self.c.bug == "ignore_y" else self.label(y))
            out = self.conv_last if self.c.bug == "rename" else self.conv_out
            h = out(jnp.tanh(self.conv_in(x) + emb[:, None, None, :]))
            h = h * jnp.nan if self.c.bug == "nan" else h
            return (h, h) if self.c.bug == "tuple" else h

    return KitModel


def __getattr__(name):  # frameworks are imported only when a model class is asked for
    if name in ("KitTorch", "KitFlax"):
        return _torch() if name == "KitTorch" else _flax()
    raise AttributeError(name)


for _bug in BUGS:
    globals()[f"PRESETS_{_bug.upper()}"] = {f"kitfault-{_bug}-tiny": registry.Preset(KitConfig(bug=_bug), "ours: test-only")}
    if f"kitfault-{_bug}" not in registry.names(include_test_only=True):
        registry.register(registry.Entry(
            name=f"kitfault-{_bug}", config=f"{__name__}:KitConfig", presets=f"{__name__}:PRESETS_{_bug.upper()}",
            backends={"torch": f"{__name__}:KitTorch", "jax": f"{__name__}:KitFlax"}, process="gaussian",
            flops=f"{__name__}:forward_macs", test_only=True))

# two presets, the second one broken (a label input without classes): `diffbench check` must see it
PRESETS_TWO = {"kitfault-two-tiny": registry.Preset(KitConfig(), "ours: test-only"),
               "kitfault-two-big": registry.Preset(KitConfig(num_classes=0, size=8), "ours: test-only")}
if "kitfault-two" not in registry.names(include_test_only=True):
    registry.register(registry.Entry(
        name="kitfault-two", config=f"{__name__}:KitConfig", presets=f"{__name__}:PRESETS_TWO",
        backends={"torch": f"{__name__}:KitTorch", "jax": f"{__name__}:KitFlax"}, process="gaussian",
        flops=f"{__name__}:forward_macs", test_only=True))
