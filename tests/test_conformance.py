"""The conformance kit (bench/conformance, the same code as `diffbench check`) over every
registered architecture's tiny preset: one test per (architecture, check), ids `ARCH/CHECK`
(select one architecture with `-k "dit/"`). Architectures from DIFFBENCH_PLUGINS and installed
`diffbench.architectures` entry points are collected too.

The kit's own ability to fail is tested on broken models in tests/test_conformance_kit.py.
"""

import pytest

from architectures import plugins, registry
from bench.conformance import Kit

plugins.warn(plugins.load())  # a user's plugins are checked like the shipped architectures
CASES = [(e.name, check) for e in registry.entries() for check in Kit(e).check_names()]
_KITS: dict[str, Kit] = {}  # one kit per architecture: models and compiled calls shared by its checks


def _kit(arch: str) -> Kit:
    if arch not in _KITS:
        _KITS.clear()  # the previous architecture's models are no longer needed
        _KITS[arch] = Kit(registry.get(arch))
    return _KITS[arch]


@pytest.mark.parametrize("arch,check", CASES, ids=[f"{a}/{c}" for a, c in CASES])
def test_conformance(arch, check):
    result = _kit(arch).run(check)
    if result.status == "skip":
        pytest.skip(result.detail)
    assert result.status == "pass", f"{arch} {check}: {result.detail}"


def test_every_shipped_architecture_has_both_backends_and_every_check():
    for entry in registry.entries():
        names = Kit(entry).check_names()
        assert {"parity", "params", "flops:torch", "flops:jax"} <= set(names), entry.name
