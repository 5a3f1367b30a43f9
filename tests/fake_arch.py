"""Test-only architectures for the suite loader: stdlib-only configs, never built or run.

`register()` adds `fakenet` (torch + jax) and `fakeuni` (torch only) to the registry; the
tests call `unregister()` afterwards. Both own a preset called `shared-tiny`, so a suite that
names it without `arch:` is ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from architectures import registry
from architectures.processes.config import GaussianConfig

NAMES = ("fakenet", "fakeuni")


@dataclass(frozen=True)
class Inner:
    depth: int = 1
    gate: bool = False


@dataclass(frozen=True)
class FakeConfig:
    width: int = 8
    mults: tuple[int, ...] = (1, 2)
    dropout: float = 0.0
    heads: int | None = None  # None = one head per 8 channels
    norm: Literal["group", "layer"] = "group"
    label: str = "x"
    use_attention: bool = False
    pair: tuple[int, float] = (1, 0.5)
    extra: Inner | None = None
    tags: tuple = ()  # a bare annotation: any JSON-like items
    process: GaussianConfig = field(default_factory=GaussianConfig)

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"width={self.width!r}; allowed: >= 1")
        if self.heads is not None and (self.heads < 1 or self.width % self.heads):
            raise ValueError(f"heads={self.heads!r} must divide width={self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r}; allowed: [0, 1)")


PRESETS = {
    "fakenet-tiny": registry.Preset(FakeConfig(), "ours: test-only"),
    "fakenet-wide": registry.Preset(FakeConfig(width=64, heads=8), "ours: test-only"),
    "shared-tiny": registry.Preset(FakeConfig(width=4), "ours: test-only"),
}
PRESETS_UNI = {
    "fakeuni-tiny": registry.Preset(FakeConfig(width=16), "ours: test-only"),
    "shared-tiny": registry.Preset(FakeConfig(width=2), "ours: test-only"),
}


def register() -> None:
    unregister()
    for name, presets, backends in [("fakenet", "PRESETS", ("torch", "jax")), ("fakeuni", "PRESETS_UNI", ("torch",))]:
        registry.register(registry.Entry(
            name=name,
            config=f"{__name__}:FakeConfig",
            presets=f"{__name__}:{presets}",
            backends={b: f"{__name__}:NoModel" for b in backends},
            process="gaussian",
            flops=f"{__name__}:no_flops",
            test_only=True,
        ))


def unregister() -> None:
    for name in NAMES:
        registry.unregister(name)
