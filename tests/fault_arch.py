"""Test-only architectures that misbehave on purpose, to prove the runner's isolation.

Imported as a plugin (suite `plugins: [tests.fault_arch]`), they register `fault-*` entries
that are never listed as shipped. Each misbehaves when its model is built or run:
raise (an exception), nan (a NaN prediction), abort (os.abort, SIGABRT), hang (sleeps forever),
oom (holds ~300 MB, then SIGKILLs itself as the OOM killer would), slow (works after 4 s),
ok (a small working conv denoiser, the control).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from architectures import registry
from architectures.processes.config import GaussianConfig

MODES = ("ok", "raise", "nan", "abort", "hang", "oom", "slow")


@dataclass(frozen=True)
class FaultConfig:
    mode: str = "ok"
    image_size: int = 8
    channels: int = 3
    width: int = 8
    num_classes: int = 0
    process: GaussianConfig = field(default_factory=GaussianConfig)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}; allowed: {list(MODES)}")

    @property
    def modality(self) -> str:
        return "image"

    def input_shapes(self, batch: int) -> dict:
        s = self.image_size
        return {"x": ((batch, s, s, self.channels), "float32"), "t": ((batch,), "float32")}


def misbehave(mode: str) -> None:
    if mode == "raise":
        raise RuntimeError("fault-raise: deliberate failure")
    if mode == "abort":
        os.abort()
    if mode == "hang":
        while True:
            time.sleep(1)
    if mode == "slow":
        time.sleep(4.0)
    if mode == "oom":
        held = bytearray(300 * 2**20)  # touched, so resident
        held[::4096] = b"x" * len(held[::4096])
        time.sleep(1.0)  # long enough for the runner's RSS sampling
        os.kill(os.getpid(), signal.SIGKILL)


def forward_macs(config: FaultConfig, batch: int) -> dict:
    misbehave(config.mode)
    s, c, w = config.image_size, config.channels, config.width
    return {"conv": batch * s * s * 9 * (c * w + w * c)}


def _torch_model():
    import torch
    from torch import nn

    class FaultModel(nn.Module):
        def __init__(self, config: FaultConfig):
            super().__init__()
            misbehave(config.mode)
            self.config = config
            self.conv_in = nn.Conv2d(config.channels, config.width, 3, padding=1, bias=False)
            self.conv_out = nn.Conv2d(config.width, config.channels, 3, padding=1, bias=False)

        def forward(self, x, t, y=None):
            h = self.conv_out(torch.relu(self.conv_in(x)))
            return h * float("nan") if self.config.mode == "nan" else h

    return FaultModel


def __getattr__(name):  # torch is imported only when the model class is asked for
    if name == "FaultModel":
        return _torch_model()
    raise AttributeError(name)


PRESETS = {f"fault-{mode}-tiny": registry.Preset(FaultConfig(mode=mode), "ours: test-only") for mode in MODES}

for _mode in MODES:
    _name = f"fault-{_mode}"
    if _name not in registry.names(include_test_only=True):
        registry.register(registry.Entry(
            name=_name,
            config="tests.fault_arch:FaultConfig",
            presets=f"tests.fault_arch:PRESETS_{_mode.upper()}",
            backends={"torch": "tests.fault_arch:FaultModel"},
            process="gaussian",
            flops="tests.fault_arch:forward_macs",
            test_only=True,
            description=f"test-only: {_mode}",
        ))

PRESETS_OK, PRESETS_RAISE, PRESETS_NAN, PRESETS_ABORT, PRESETS_HANG, PRESETS_OOM, PRESETS_SLOW = (
    {f"fault-{m}-tiny": PRESETS[f"fault-{m}-tiny"]} for m in MODES)
