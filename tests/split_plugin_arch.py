"""A plugin laid out as docs/adding-an-architecture.md shows: this module registers the entry,
its config lives in another module (tests.fault_arch). Every process that resolves the entry
(case worker, FLOP counters) must import this module, not just the config's."""

from __future__ import annotations

from architectures import registry
from tests.fault_arch import FaultConfig

PRESETS = {"split-ok-tiny": registry.Preset(FaultConfig(), "ours: test-only")}

if "split-ok" not in registry.names(include_test_only=True):
    registry.register(registry.Entry(
        name="split-ok",
        config="tests.fault_arch:FaultConfig",
        presets=f"{__name__}:PRESETS",
        backends={"torch": "tests.fault_arch:FaultModel"},
        process="gaussian",
        flops="tests.fault_arch:forward_macs",
        test_only=True,
        description="test-only: registered apart from its config module",
    ))
