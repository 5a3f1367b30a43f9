"""The two adapter packages have one surface (issue #23): the same modules and public names, and
no module-level state a call leaves for a later call to read (the jax compile's cache state
travels with its compiled step; the jax peak-memory mark is returned to the caller)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from bench import backends

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ROOT / "bench" / "backends"
# The CPU locks this process holds: an flock lives as long as its file descriptor, so the
# descriptors must stay open (in a module-level table) for the life of the process.
PROCESS_LIFETIME_STATE = {("cpus.py", "_held")}
MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "remove", "add",
            "discard"}


def test_both_adapter_packages_have_the_same_modules_and_public_names():
    torch_adapter, jax_adapter = backends.get("torch"), backends.get("jax")
    modules = {name: sorted(p.name for p in (BACKENDS / f"{name}_adapter").glob("*.py")) for name in ("torch", "jax")}
    assert modules["torch"] == modules["jax"]
    surface = {}
    for adapter in (torch_adapter, jax_adapter):
        assert all(hasattr(adapter, name) for name in adapter.__all__), adapter.__name__
        assert set(adapter.BACKEND_ONLY) <= set(adapter.__all__)
        public = {n for n in dir(adapter) if not n.startswith("_")} - {"BACKEND_ONLY"}
        assert public - set(adapter.__all__) <= {m[:-3] for m in modules["torch"]}  # the rest: its modules
        surface[adapter.NAME] = set(adapter.__all__) - set(adapter.BACKEND_ONLY)
    assert surface["torch"] == surface["jax"]


def _module_state_writes(path: Path) -> list[str]:
    """'file:line name' for each function that rebinds (global) or mutates a module-level name."""
    tree = ast.parse(path.read_text())
    module_names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        local = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        local |= {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        shared = (module_names - local) | {n for g in ast.walk(fn) if isinstance(g, ast.Global) for n in g.names}
        for node in ast.walk(fn):
            target = None
            if isinstance(node, ast.Global):
                target = node.names[0]
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                for t in getattr(node, "targets", None) or [node.target]:
                    if isinstance(t, (ast.Subscript, ast.Attribute)) and isinstance(t.value, ast.Name):
                        target = t.value.id
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in MUTATORS and isinstance(node.func.value, ast.Name)):
                target = node.func.value.id
            if target in shared and (path.name, target) not in PROCESS_LIFETIME_STATE:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {target}")
    return found


def test_no_backend_function_writes_module_level_state():
    writes = [w for path in sorted(BACKENDS.rglob("*.py")) for w in _module_state_writes(path)]
    assert not writes, f"module-level state written by functions: {writes}"


JAX_CACHE_STEPS = """
import json, sys
import tests.precision_arch
from architectures import registry
from bench.backends import jax_adapter as jb
from bench.backends.jax_adapter.timing import configure_cache

configure_cache()
entry = registry.get("precision-tiny")
built = jb.build(entry, entry.preset("precision-tiny").config, seed=0)
train = jb.make_train_step(built, 2, seed=0)  # compiles (and writes) the step: cold
eager = jb.make_sample_step(built, 2, seed=0, compile=False)  # no compile: no cache state
trainer = jb.Trainer(built)
trainer.compile_step(train.inputs)  # the same program again: served by the cache
json.dump([train.info["cache_state"], eager.info["cache_state"], trainer.cache_state], sys.stdout)
"""


def test_each_jax_step_records_its_own_compile_cache_state(tmp_path):
    env = {**os.environ, "DIFFBENCH_JAX_CACHE_DIR": str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", JAX_CACHE_STEPS], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == '["cold", null, "warm"]'
