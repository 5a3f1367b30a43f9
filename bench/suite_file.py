"""YAML suite -> frozen, validated cases (`load`, `loads`), plus `resolve_config`. Case ids are made
in bench/case_ids.py, the plan table in bench/plan.py.

Every problem is one SpecError: '<file>: <key path>: <problem>; allowed: <...>'. Loading imports
neither torch nor jax (the registry is lazy and config modules are standard library only).
See docs/suites.md for the YAML reference.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from architectures import plugin_failures, plugins, registry
from bench import case_checks, case_ids
from bench.case import MEASUREMENTS, Case, SETTINGS, check_setting, combination_problems
from bench.overrides import FrozenMapping, apply_overrides, deep_merge, dotted
from bench.strict_yaml import SpecError, child, parse, read_text, show
from bench.training.spec import check_for_case as check_train

__all__ = ["MEASUREMENTS", "Case", "Suite", "SpecError", "load", "loads", "resolve_config"]

TOP_KEYS = ("name", "description", "plugins", "defaults", "cases")
CASE_KEYS = ("arch", "preset", "override", *SETTINGS, "matrix")
DEFAULT_KEYS = (*SETTINGS, "matrix")
MATRIX_KEYS = ("preset", "override", *[s for s in SETTINGS if s not in ("measure", "timeout", "rounds")])
DEFAULT_MATRIX_KEYS = tuple(k for k in MATRIX_KEYS if k not in ("preset", "override"))
MAX_CASES = 10_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)  # a directory name under results/
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    content_sha256: str
    cases: tuple[Case, ...]
    plugins: tuple[str, ...] = ()
    description: str = ""


def load(path) -> Suite:
    return loads(read_text(path), source=str(path))


def loads(text: str, source: str = "<string>") -> Suite:
    raw = parse(text, source)
    top = _mapping(raw, "", source, TOP_KEYS, "a mapping with a `cases:` list")
    name = _suite_name(top, source)
    plugins = _plugins(top.get("plugins", []), source)
    description = _typed(top.get("description", ""), str, "description", source, "a string")
    defaults = _Defaults(top.get("defaults", {}), source)
    cases = top.get("cases")
    if not isinstance(cases, list) or not cases:
        raise SpecError(source, "cases", f"expected a non-empty list of cases, got {show(cases)}",
                        "a list of mappings with keys " + ", ".join(CASE_KEYS))
    points = []
    for i, c in enumerate(cases):
        for point in _CaseReader(c, f"cases[{i}]", defaults, source).points():
            if len(points) >= MAX_CASES:
                raise SpecError(source, f"cases[{i}]", f"the suite expands to more than {MAX_CASES} cases",
                                f"at most {MAX_CASES} cases in all")
            points.append(point)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return Suite(name, source, digest, case_ids.number(points, source), plugins, description)


def _mapping(value, path: str, source: str, keys, what: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(source, path, f"expected {what}, got {show(value)}", keys)
    for key in value:
        if key not in keys:
            raise SpecError(source, child(path, key), f"unknown key {key!r}", keys)
    return value


def _typed(value, kind, path: str, source: str, allowed: str):
    if not isinstance(value, kind):
        raise SpecError(source, path, f"wrong type: got {show(value)}", allowed)
    return value


def _suite_name(top: dict, source: str) -> str:
    if "name" in top:
        name = top["name"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SpecError(source, "name", f"bad suite name {show(name)}",
                          "1 to 64 ASCII letters, digits, '_', '.', '-' (starting with a letter or digit)")
        return name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).stem, flags=re.ASCII).strip("-._")[:64]
    return stem or "suite"


def _plugins(value, source: str) -> tuple[str, ...]:
    _typed(value, list, "plugins", source, "a list of module names")
    _import_plugins((), "DIFFBENCH_PLUGINS", source)
    for i, module in enumerate(value):
        if not isinstance(module, str) or not _MODULE.fullmatch(module):
            raise SpecError(source, f"plugins[{i}]", f"bad module name {show(module)}", "dotted module names")
        _import_plugins((module,), f"plugins[{i}]", source)
    return tuple(value)


def _import_plugins(modules, path: str, source: str) -> None:
    try:
        plugins.load_plugins(modules)
    except Exception as exc:  # a plugin's import-time error is the user's to fix: name the module
        raise SpecError(source, path, f"plugin import failed: {type(exc).__name__}: {exc}",
                        "importable modules that call architectures.registry.register(...)") from None


def _axis(values, path: str, key: str, source: str) -> list[tuple]:
    """A matrix axis: [(checked value, its key path), ...]."""
    if not isinstance(values, list):
        raise SpecError(source, path, f"a matrix axis must be a list, got {show(values)}", f"a list of {key} values")
    if not values:
        raise SpecError(source, path, "empty list: the grid would have no cases", f"a non-empty list of {key} values")
    return [(_check(key, v, child(path, i), source), child(path, i)) for i, v in enumerate(values)]


def _check(key: str, value, path: str, source: str):
    if key == "preset":
        return _typed(value, str, path, source, "a preset name (see `diffbench list`)")
    if key == "override":
        return _typed(value, dict, path, source, "a mapping of config fields")
    return check_setting(key, value, source, path)


BUILT_IN = "(built-in default)"  # the key path of a setting the suite does not give


class _Defaults:
    """`defaults:` checked once: key -> axis [(value, path), ...]."""

    def __init__(self, raw, source: str):
        raw = _mapping(raw, "defaults", source, DEFAULT_KEYS, "a mapping")
        matrix = _mapping(raw.get("matrix", {}), "defaults.matrix", source, DEFAULT_MATRIX_KEYS, "a mapping")
        self.axes = {}
        for key, value in raw.items():
            if key != "matrix":
                self.axes[key] = [(_check(key, value, f"defaults.{key}", source), f"defaults.{key}")]
        for key, values in matrix.items():
            if key in self.axes:
                raise SpecError(source, f"defaults.matrix.{key}", f"{key!r} is also set at defaults.{key}",
                                "each setting in one place")
            self.axes[key] = _axis(values, f"defaults.matrix.{key}", key, source)

    def axis(self, key: str) -> list[tuple]:
        return self.axes.get(key) or [(SETTINGS[key], BUILT_IN)]


class _CaseReader:
    """One `cases[i]` entry -> its grid points (plain dicts of Case fields)."""

    def __init__(self, raw, path: str, defaults: _Defaults, source: str):
        self.path, self.source = path, source
        self.raw = _mapping(raw, path, source, CASE_KEYS, "a case mapping")
        matrix = _mapping(self.raw.get("matrix", {}), child(path, "matrix"), source, MATRIX_KEYS, "a mapping")
        self.override = _check("override", self.raw.get("override", {}), child(path, "override"), source)
        axes = {key: self._axis_for(key, matrix, defaults) for key in ("preset", "override", *SETTINGS)}
        self.axes = {key: axis for key, axis in axes.items() if axis}
        if "preset" not in self.axes:
            raise SpecError(source, path, "missing key 'preset'", self._presets_allowed())
        self.arch = self._arch()

    def _axis_for(self, key: str, matrix: dict, defaults: _Defaults) -> list[tuple] | None:
        """Where `key` comes from: this case's matrix, the case, then defaults (see docs/suites.md)."""
        here = child(self.path, key)
        if key in matrix:
            if key in self.raw and key != "override":  # a matrix override is merged over the case's
                raise SpecError(self.source, f"{self.path}.matrix.{key}", f"{key!r} is also set at {here}",
                                "each setting in one place")
            return _axis(matrix[key], f"{self.path}.matrix.{key}", key, self.source)
        if key in self.raw and key != "override":
            return [(_check(key, self.raw[key], here, self.source), here)]
        return defaults.axis(key) if key in SETTINGS else None

    def _arch(self):
        if "arch" not in self.raw:
            return None
        arch = self.raw["arch"]
        allowed = registry.names(include_test_only=True)
        if not isinstance(arch, str) or arch not in allowed:
            raise SpecError(self.source, f"{self.path}.arch", f"unknown architecture {show(arch)}{plugin_failures.failure_hint()}",
                            allowed)
        return registry.get(arch)

    def _presets_allowed(self) -> list[str]:
        return sorted({p for entry in registry.entries(include_test_only=True) for p in _try_presets(entry)})

    def points(self):
        keys = list(self.axes)
        size = 1
        for key in keys:
            size *= len(self.axes[key])
        if size > MAX_CASES:
            raise SpecError(self.source, f"{self.path}.matrix", f"the grid has {size} cases", f"at most {MAX_CASES}")
        for combo in itertools.product(*(self.axes[k] for k in keys)):
            yield self._point(dict(zip(keys, combo)))

    def _point(self, chosen: dict) -> dict:
        preset, preset_path = chosen["preset"]
        entry = self._entry(preset, preset_path)
        backend, backend_path = chosen["backend"]
        if backend not in entry.backends:
            raise SpecError(self.source, backend_path, f"architecture {entry.name!r} has no {backend!r} backend",
                            sorted(entry.backends))
        device, device_path = chosen["device"]
        if device == "tpu" and backend == "torch":
            raise SpecError(self.source, device_path, "device 'tpu' needs backend 'jax' (torch has no TPU here)",
                            "cpu, cuda, cuda:N, auto with backend torch")
        overrides = self._overrides(entry, preset, chosen.get("override"))
        fields = {key: chosen[key][0] for key in SETTINGS}
        if backend == "jax" and fields["compile"] == "none" and chosen["compile"][1] != BUILT_IN:
            raise SpecError(self.source, chosen["compile"][1], "jax always jit-compiles its steps (compile: none "
                            "would not time them op by op)", "default, or compile left unset, with backend jax")
        for key, problem, allowed in combination_problems(fields):
            raise SpecError(self.source, chosen[key][1], problem, allowed)
        train = None if fields["train"] is None else fields["train"].to_dict()
        check_train(train, entry, preset, fields["measure"], self.source, chosen["train"][1]
                    if fields["train"] is not None else chosen["measure"][1])
        case_checks.check_point(entry, preset, overrides, train, fields, chosen, self.source,
                                f"{self.path}.override")
        return dict(arch=entry.name, preset=preset, overrides=overrides, origin=self.path, **fields)

    def _entry(self, preset: str, path: str):
        if self.arch is not None:
            presets = _load_presets(self.arch, self.source, path)
            if preset not in presets:
                raise SpecError(self.source, path, f"unknown preset {preset!r} of {self.arch.name!r}"
                                f"{registry.did_you_mean(preset, presets)}", sorted(presets))
            return self.arch
        owners = [e for e in registry.entries(include_test_only=True) if preset in _try_presets(e)]
        if len(owners) != 1:
            problem = f"unknown preset {preset!r}" if not owners else \
                f"preset {preset!r} belongs to {[e.name for e in owners]}: say which with `arch:`"
            broken = [e.name for e in registry.entries(include_test_only=True) if not _try_presets(e)]
            if broken and not owners:
                problem += f" (the presets of {broken} could not be loaded: name the arch to see why)"
            if not owners:
                problem += registry.did_you_mean(preset, self._presets_allowed()) + (
                    plugin_failures.failure_hint() or "; a preset from a plugin needs it in `plugins:`, --plugins or "
                                              "DIFFBENCH_PLUGINS")
            raise SpecError(self.source, path, problem, self._presets_allowed())
        return owners[0]

    def _overrides(self, entry, preset: str, matrix_item) -> FrozenMapping:
        base = self.override
        item, item_path = matrix_item if matrix_item else ({}, None)
        if not base and not item:
            return FrozenMapping()
        config = _load_presets(entry, self.source, f"{self.path}.preset")[preset].config
        path_of = _origin_paths(f"{self.path}.override", item, item_path)
        return apply_overrides(config, deep_merge(base, item), self.source, path_of)[1]


def _origin_paths(base_path: str, item: dict, item_path):
    """path_of(keys): the matrix item's path where it set those keys, else the case `override:` path."""
    case_path, item_dotted = dotted(base_path), dotted(item_path or base_path)

    def path_of(keys: tuple) -> str:
        node, from_item = item, bool(keys) and item_path is not None
        for key in keys:
            if not isinstance(node, dict):
                break
            if key not in node:
                from_item = False
                break
            node = node[key]
        return item_dotted(keys) if from_item else case_path(keys)
    return path_of


def _try_presets(entry) -> dict:
    try:
        return entry.load_presets()
    except Exception:  # an entry whose config module is missing or broken offers no presets here
        return {}


def _load_presets(entry, source: str, path: str) -> dict:
    try:
        return entry.load_presets()
    except Exception as exc:
        raise SpecError(source, path, f"cannot load the presets of {entry.name!r}: {type(exc).__name__}: {exc}",
                        f"a working {entry.presets}") from None


def resolve_config(case: Case):
    """The case's config: its preset's config with its overrides applied (for the worker)."""
    entry = registry.get(case.arch)
    config = entry.preset(case.preset).config
    return apply_overrides(config, case.overrides, case.id, dotted("override"))[0]
