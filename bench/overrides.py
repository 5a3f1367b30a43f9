"""Config overrides from YAML: checked against the config dataclass's field types, applied with
dataclasses.replace so the config's own __post_init__ validation runs. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from bench.strict_yaml import SpecError, show


class FrozenMapping(Mapping):
    """An immutable, hashable nested mapping (lists become tuples); `to_dict()` gives plain JSON data."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping = ()):
        object.__setattr__(self, "_data", {str(k): freeze(v) for k, v in dict(data).items()})

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __hash__(self):
        return hash(tuple(sorted(self._data.items(), key=lambda kv: kv[0])))

    def __setattr__(self, name, value):
        raise AttributeError("FrozenMapping is immutable")

    def __repr__(self):
        return f"FrozenMapping({self._data!r})"

    def to_dict(self) -> dict:
        return {k: thaw(v) for k, v in self._data.items()}


def freeze(value):
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenMapping) else FrozenMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def canonical_json(value) -> str:
    return json.dumps(thaw(value), sort_keys=True, separators=(",", ":"))


def deep_merge(base: Mapping, top: Mapping) -> dict:
    """`top` over `base`; where both hold a mapping, merge them key by key."""
    out = dict(base)
    for key, value in top.items():
        both = isinstance(out.get(key), Mapping) and isinstance(value, Mapping)
        out[key] = deep_merge(out[key], value) if both else value
    return out


def dotted(base: str) -> Callable[[tuple], str]:
    """path_of for overrides that all come from one place: keys -> 'base.a.b[2]'."""
    def path_of(keys: tuple) -> str:
        return base + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)
    return path_of


def apply_overrides(config, overrides: Mapping, source: str, path_of: Callable[[tuple], str]):
    """-> (new config, normalized overrides as a FrozenMapping); errors are SpecErrors at path_of(keys)."""
    new, normalized = _Applier(source, path_of).apply(config, overrides, ())
    return new, FrozenMapping(normalized)


class _Applier:
    def __init__(self, source: str, path_of: Callable[[tuple], str]):
        self.source, self.path_of = source, path_of

    def fail(self, keys: tuple, problem: str, allowed=None):
        raise SpecError(self.source, self.path_of(keys), problem, allowed)

    def apply(self, config, overrides, keys: tuple):
        if not isinstance(overrides, Mapping):
            self.fail(keys, f"expected a mapping of {type(config).__name__} fields, got {show(overrides)}",
                      _field_names(config))
        hints = self.hints(type(config), keys)
        changes, normalized, aliased = {}, {}, {}
        if not keys:  # `resolution`, `channels`, `frames` work for every family (bench/aliases.py), set last
            aliased = {k: v for k, v in overrides.items() if self.is_alias(config, k)}
            overrides = {k: v for k, v in overrides.items() if k not in aliased}
        for key, value in overrides.items():
            here = (*keys, key)
            if key not in _field_names(config):
                self.fail(here, f"unknown field {key!r} of {type(config).__name__}", _field_names(config))
            current = getattr(config, key)
            if _is_instance(current) and isinstance(value, Mapping):
                changes[key], normalized[key] = self.apply(current, value, here)
            else:
                changes[key], normalized[key] = self.coerce(value, hints[key], here)
        try:
            config = dataclasses.replace(config, **changes)
        except Exception as exc:  # the config's own __post_init__ check, whatever it raises
            self.fail(keys, f"invalid {type(config).__name__}: {exc}",
                      f"values {type(config).__name__} accepts together (see its docstring)")
        return self.aliases(config, aliased), {**normalized, **aliased}

    @staticmethod
    def is_alias(config, key) -> bool:
        from bench.aliases import ALIASES

        return key in ALIASES and key not in _field_names(config)

    def aliases(self, config, used: dict):
        """The config with the alias keys applied (after the real fields: `{resolution: 32,
        attention_resolutions: [16]}` is checked as a whole)."""
        from bench import aliases

        for key, value in used.items():
            try:
                config = aliases.apply(config, key, value)
            except aliases.AliasError as exc:
                self.fail((key,), str(exc), "resolution, channels, frames where the family has them, or "
                                            f"{type(config).__name__} fields")
            except Exception as exc:  # the config's own __post_init__ check
                self.fail((key,), f"invalid {type(config).__name__}: {exc}",
                          f"values {type(config).__name__} accepts together (see its docstring)")
        return config

    def hints(self, cls, keys: tuple) -> dict:
        try:
            return typing.get_type_hints(cls)
        except Exception as exc:  # an annotation that does not resolve is the config author's bug
            self.fail(keys, f"cannot read the field types of {cls.__name__}: {exc}",
                      "config classes whose annotations resolve (the config author's to fix)")

    def coerce(self, value, hint, keys: tuple):
        """-> (value for the config, value for the suite's record), checked against the annotation `hint`.

        Ints widen to float, lists become tuples, a mapping for a dataclass field becomes an instance.
        """
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is tuple:  # a bare `tuple` annotation
            origin, args = tuple, (Any, ...)
        if origin in (typing.Union, types.UnionType):
            return self.union(value, args, hint, keys)
        if origin is tuple:
            return self.tuple(value, args, hint, keys)
        if origin is typing.Literal:
            if not any(type(value) is type(a) and value == a for a in args):
                self.fail(keys, f"bad value {show(value)}", [repr(a) for a in args])
            return value, value
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.dataclass(value, hint, keys)
        check = _SCALARS.get(hint)
        if check is None:
            self.fail(keys, f"a field of type {describe(hint)} cannot be set from a suite", "fields of type "
                      "int, float, bool, str, None, tuple, Literal, Union, Any or a config dataclass")
        ok, converted = check(value)
        if not ok:
            self.fail(keys, f"wrong type: got {show(value)}", describe(hint))
        return converted, converted

    def union(self, value, args, hint, keys: tuple):
        classes = [a for a in args if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if classes and isinstance(value, Mapping):  # let the nested field's own error through
            return self.coerce(value, classes[0], keys)
        for arm in args:
            try:
                return self.coerce(value, arm, keys)
            except SpecError:
                continue
        self.fail(keys, f"wrong type: got {show(value)}", describe(hint))

    def tuple(self, value, args, hint, keys: tuple):
        if not isinstance(value, (list, tuple)):
            self.fail(keys, f"wrong type: got {show(value)}", describe(hint))
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif args == ((),):
            args = ()
        if len(value) != len(args):
            self.fail(keys, f"expected {len(args)} items, got {len(value)}: {show(value)}", describe(hint))
        pairs = [self.coerce(v, a, (*keys, i)) for i, (v, a) in enumerate(zip(value, args))]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

    def dataclass(self, value, cls, keys: tuple):
        if not isinstance(value, Mapping):
            self.fail(keys, f"wrong type: got {show(value)}", describe(cls))
        try:
            base = cls()
        except Exception as exc:
            self.fail(keys, f"{cls.__name__} has no defaults to override: {exc}",
                      "overrides of config fields whose class has defaults for every field")
        return self.apply(base, value, keys)


def _field_names(config) -> list[str]:
    return [f.name for f in dataclasses.fields(config) if f.init and not f.name.startswith("_")]


def _is_instance(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _json_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))


def _any(value):
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _any(v)[0] for k, v in value.items()), freeze(value)
    if isinstance(value, (list, tuple)):
        return all(_any(v)[0] for v in value), freeze(value)
    return _json_scalar(value), value


def _number(value):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok, float(value) if ok else value


_SCALARS: dict[Any, Callable] = {
    bool: lambda v: (isinstance(v, bool), v),
    int: lambda v: (isinstance(v, int) and not isinstance(v, bool), v),
    float: _number,
    str: lambda v: (isinstance(v, str), v),
    type(None): lambda v: (v is None, v),
    None: lambda v: (v is None, v),
    Any: _any,
}


def describe(hint) -> str:
    """An annotation in words, for the `allowed:` part of an error."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null", None: "null", Any: "any JSON-like value"}
    if hint in words:
        return words[hint]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({describe(args[0])})"
        return f"a list of {len(args)}: [" + ", ".join(describe(a) for a in args) + "]"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} fields ({', '.join(f.name for f in dataclasses.fields(hint))})"
    return str(hint)
