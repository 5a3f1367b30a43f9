"""A plugin module as a user would write one: importing it registers `plugnet` (test-only).

Used by tests/test_spec.py through a suite's `plugins:` list and through DIFFBENCH_PLUGINS; the
test removes the entry and this module from sys.modules afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from architectures import registry


@dataclass(frozen=True)
class PlugConfig:
    width: int = 4


PRESETS = {"plugnet-tiny": registry.Preset(PlugConfig(), "ours: test-only")}

registry.register(registry.Entry(
    name="plugnet",
    config=f"{__name__}:PlugConfig",
    presets=f"{__name__}:PRESETS",
    backends={"jax": f"{__name__}:NoModel"},
    process="gaussian",
    flops=f"{__name__}:no_flops",
    test_only=True,
))
