"""Plugins load the same way in every command. The walkthrough's out-of-tree package
(docs/adding-an-architecture.md, extracted into a temporary directory with entry-point metadata
on the path) is listed, passes `diffbench check` and runs in a suite; broken plugins are reported
by name while the rest still work; a one-backend plugin passes with parity skipped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from architectures import plugins, registry

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "adding-an-architecture.md"
BROKEN = {
    "broken_raise": "raise RuntimeError('deliberately broken')\n",
    "broken_exit": "import sys\nsys.exit(3)\n",
    "broken_dep": "import no_such_dependency_xyz\n",
    "broken_half": ("from architectures.registry import Entry, register\n"
                    "register(Entry(name='half', config='a:b', presets='a:b', backends={'torch': 'a:b'}, "
                    "process='gaussian', flops='a:b'))\nraise ValueError('after registering')\n"),
}
TORCH_ONLY = '''from architectures.registry import Entry, Preset, register
from tinynet.config import TinyNetConfig

PRESETS = {"tinytorch-tiny": Preset(TinyNetConfig(image_size=8, patch_size=2, width=16, depth=1), "ours (tests)")}
register(Entry(name="tinytorch", config="tinynet.config:TinyNetConfig", presets=f"{__name__}:PRESETS",
               backends={"torch": "tinynet.tinynet_torch:TinyNet"}, process="gaussian",
               flops="tinynet.flops:forward_macs", description="one backend"))
'''


def doc_files(text: str) -> dict[str, str]:
    """The `<!-- file: PATH -->` code blocks of a doc page."""
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", text, re.S)}


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outside")
    for path, text in doc_files(DOC.read_text()).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text + "\n")
    (root / "tinynet" / "__init__.py").write_text("")
    dist = root / "tinynet-0.1.dist-info"  # what `pip install` would leave: importlib.metadata finds it on sys.path
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinynet\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[diffbench.architectures]\ntinynet = tinynet.plugin\n")
    for name, text in BROKEN.items():
        (root / f"{name}.py").write_text(text)
    (root / "tinytorch.py").write_text(TORCH_ONLY)
    return root


def cli(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`diffbench ARGS` as a user runs it from the plugin's directory (not on PYTHONPATH)."""
    environ = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{root / 'site'}", **(env or {})}
    environ.pop(plugins.PLUGINS_ENV, None) if not env or plugins.PLUGINS_ENV not in env else None
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=root, env=environ, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def site(outside) -> Path:
    """The package 'installed': its files and dist-info in a site directory on PYTHONPATH."""
    site = outside / "site"
    site.mkdir()
    for item in ("tinynet", "tinynet-0.1.dist-info"):
        os.symlink(outside / item, site / item)
    return outside


def test_doc_example_has_every_file():
    assert set(doc_files(DOC.read_text())) == {"tinynet/config.py", "tinynet/tinynet_torch.py", "tinynet/tinynet_flax.py",
                                               "tinynet/flops.py", "tinynet/plugin.py", "pyproject.toml",
                                               "tinynet-vs-rin.yaml"}


def test_installed_plugin_is_listed_checked_and_runs_in_a_suite(site, tmp_path):
    listed = cli(site, "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^tinynet +image +jax,torch +gaussian +tinynet-cifar10, tinynet-tiny$", listed.stdout, re.M)
    assert {"rin", "dit", "unet2d"} <= {line.split()[0] for line in listed.stdout.splitlines()}

    checked = cli(site, "check", "tinynet", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] and {r["status"] for r in report["results"]} == {"pass"}
    assert {"parity", "flops:torch", "flops:jax", "train_step:jax", "sample:torch"} <= {r["check"] for r in report["results"]}

    planned = cli(site, "plan", "tinynet-vs-rin.yaml")  # the walkthrough's suite, next to RIN
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.count("tinynet-tiny") >= 2 and planned.stdout.count("rin-tiny") >= 2
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\ndefaults: {batch: 2, measure: [params], timeout: 120, rounds: 1}\n"
                     "cases:\n  - {preset: tinynet-tiny, backend: torch, measure: [params, sample_step]}\n"
                     "  - {preset: tinynet-tiny, backend: jax}\n  - {preset: rin-tiny, backend: torch}\n")
    ran = cli(site, "run", str(suite), "--results", str(tmp_path / "results"), "--quiet")
    assert ran.returncode == 0 and "3 case(s) recorded" in ran.stdout and "(0 failed)" in ran.stdout, ran.stdout + ran.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("*.json") if p.name != "run.json"]
    tiny = [r for r in records if r.get("case", {}).get("preset") == "tinynet-tiny"]
    assert len(tiny) == 2 and all(r["status"] == "ok" and r["params"] > 0 for r in tiny), tiny


def test_broken_plugins_are_reported_by_name_and_the_rest_still_listed(site):
    out = cli(site, "--plugins", "broken_raise,broken_exit", "list", "--plugins", "broken_dep,broken_half",
              env={plugins.PLUGINS_ENV: "no_such_plugin_typo"})
    assert out.returncode == 0, out.stderr
    names = {line.split()[0] for line in out.stdout.splitlines()}
    assert {"rin", "unet2d", "dit", "tinynet"} <= names and "half" not in names  # half's entry was removed again
    warnings = out.stderr.strip().splitlines()
    for module, error in [("broken_raise", "RuntimeError: deliberately broken"), ("broken_exit", "sys.exit(3)"),
                          ("broken_dep", "No module named 'no_such_dependency_xyz'"),
                          ("broken_half", "ValueError: after registering"),
                          ("no_such_plugin_typo", "ModuleNotFoundError")]:
        assert any(f"plugin {module!r}" in w and error in w for w in warnings), (module, warnings)
    assert len(warnings) == 5

    unknown = cli(site, "describe", "half", "--plugins", "broken_half")
    assert unknown.returncode == 2 and "'half'" in unknown.stderr.splitlines()[-1]
    assert "plugin 'broken_half' (--plugins) failed to import: ValueError: after registering" in unknown.stderr
    checked = cli(site, "check", "half", "--plugins", "broken_half")
    assert checked.returncode == 2
    assert "plugins that failed to import: broken_half (ValueError: after registering)" in checked.stderr


def test_one_backend_plugin_passes_with_parity_skipped(site):
    out = cli(site, "check", "tinytorch", "--plugins", "tinytorch")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {line.split()[1]: line.split()[0] for line in out.stdout.splitlines()[1:-1]}
    assert lines["parity"] == lines["params"] == "SKIP" and "only the torch backend is registered" in out.stdout
    assert {c for c, s in lines.items() if s == "PASS"} == {"contract", "forward:torch", "extras:torch", "flops:torch",
                                                            "train_step:torch", "sample:torch"}
    listed = cli(site, "list", "tinytorch", "--plugins", "tinytorch")
    assert re.search(r"^tinytorch +image +torch +gaussian", listed.stdout, re.M)


def test_loader_isolates_failures_and_runs_entry_point_callables_once(outside, monkeypatch):
    monkeypatch.syspath_prepend(str(outside))
    (outside / "ep_callable.py").write_text(
        "from architectures.registry import Entry, register\nCALLS = []\n"
        "def register_all():\n    CALLS.append(1)\n"
        "    register(Entry(name='epcall', config='tinynet.config:TinyNetConfig', presets='tinynet.config:PRESETS',\n"
        "                   backends={'torch': 'x:y'}, process='gaussian', flops='tinynet.flops:forward_macs', test_only=True))\n")
    dist = outside / "epcall-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epcall\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[diffbench.architectures]\nepcall = ep_callable:register_all\n"
                                           "tinynet = tinynet.plugin\n")
    try:
        first = plugins.load(["broken_exit", "broken_half"], ambient=True)
        second = plugins.load([], ambient=True)
        import ep_callable

        assert ep_callable.CALLS == [1]  # a callable entry point runs once per process
        assert "epcall = ep_callable:register_all" in first.loaded + second.loaded
        assert {f.plugin for f in first.failed} >= {"broken_exit", "broken_half"}
        assert "half" not in registry.names(include_test_only=True)
        assert "epcall" in registry.names(include_test_only=True)  # the callable entry point registered it
        with pytest.raises(registry.RegistryError, match="could not be imported: SystemExit"):
            plugins.load_plugins(["broken_exit"])  # a suite's own plugins: are required
    finally:
        for name in ("epcall", "tinynet"):
            registry.unregister(name)
        for plugin in ("epcall = ep_callable:register_all", "tinynet = tinynet.plugin", "broken_exit", "broken_half"):
            plugins.forget(plugin)
        for module in [m for m in sys.modules if m.startswith(("tinynet", "ep_callable", "broken_"))]:
            del sys.modules[module]
