import json
import subprocess
import sys
from pathlib import Path

import pytest

from architectures import registry
from architectures.registry import Entry, RegistryError

REPO = Path(__file__).resolve().parents[1]


def _entry(name, **kw):
    fields = dict(config="tests.fault_arch:FaultConfig", presets="tests.fault_arch:PRESETS",
                  backends={"torch": "tests.fault_arch:FaultModel"}, process="gaussian",
                  flops="tests.fault_arch:forward_macs", test_only=True)
    fields.update(kw)
    return Entry(name=name, **fields)


def test_duplicate_name_is_an_error():
    with pytest.raises(RegistryError, match="registered twice"):
        registry.register(_entry("rin"))


def test_unknown_name_lists_valid_ones():
    with pytest.raises(RegistryError) as err:
        registry.get("nope")
    for name in ("rin", "unet2d", "unet3d"):
        assert name in str(err.value)


def test_unknown_backend_and_process_are_errors():
    with pytest.raises(RegistryError, match="allowed"):
        _entry("x", backends={"mxnet": "a:b"})
    with pytest.raises(RegistryError, match="unknown process"):
        registry.register(_entry("x", process="flow"))


def test_test_only_entries_are_hidden_from_listing():
    registry.register(_entry("hidden-one"))
    try:
        assert "hidden-one" not in registry.names()
        assert "hidden-one" in registry.names(include_test_only=True)
    finally:
        registry.unregister("hidden-one")


def test_every_preset_name_is_unique_across_the_registry():
    seen = {}
    for entry in registry.entries():
        for preset in entry.load_presets():
            assert preset not in seen, f"{preset} in {entry.name} and {seen[preset]}"
            seen[preset] = entry.name
            assert registry.find_preset(preset).name in (entry.name, seen[preset])


def test_every_entry_has_a_tiny_preset_with_provenance():
    for entry in registry.entries():
        presets = entry.load_presets()
        assert any(name.endswith("-tiny") for name in presets), entry.name
        assert all(p.provenance for p in presets.values())


def test_plugins_from_environment(monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_ENV, "json, tests.fault_arch")
    from architectures import plugins

    assert plugins.load_plugins(["os"]) == ["os", "json", "tests.fault_arch"]
    try:
        with pytest.raises(RegistryError, match="no_such_module"):
            plugins.load_plugins(["no_such_module"])
    finally:
        plugins.forget("no_such_module")  # its failure would show in later tests' error hints


def test_listing_and_describing_import_no_framework():
    code = ("import sys; from bench.cli import main; main(['list']); "
            "[main(['describe', n, '--json']) for n in ('rin', 'unet2d', 'unet3d')]; "
            "print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_describe_json_has_presets_with_provenance(capsys):
    from bench.cli import main

    assert main(["describe", "rin", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "rin-tiny" in info["presets"]
    assert set(info["backends"]) == {"torch", "jax"}
    assert all(p["provenance"] for p in info["presets"].values())


def test_datasets_folder_is_not_a_package():
    # a top-level `datasets` package would shadow HuggingFace `datasets`
    assert (REPO / "datasets").is_dir()
    assert not (REPO / "datasets" / "__init__.py").exists()
    import importlib.util

    spec = importlib.util.find_spec("datasets")
    assert spec is None or not str(spec.origin or "").startswith(str(REPO / "datasets"))
