"""One benchmark case: a frozen, validated, JSON round-trippable record of what to run.

The runner sends `case.to_dict()` to the worker subprocess, which rebuilds it with
`Case.from_dict(...)`; both ends check the same invariants.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields

from architectures.registry import BACKENDS
from bench.overrides import FrozenMapping
from bench.strict_yaml import SpecError, show

MEASUREMENTS = ("params", "flops", "sample_step", "train_step", "memory", "quality")
DEVICES = ("cpu", "cuda", "cuda:N", "tpu", "auto")
_DEVICE = re.compile(r"cpu|cuda|cuda:\d+|tpu|auto")
MAX_SEED = 2**32  # jax.random.PRNGKey takes a uint32 seed

# Settings a suite may give per case or in `defaults:`, with their built-in defaults.
SETTINGS = {
    "backend": "torch",
    "device": "cpu",
    "batch": 1,
    "measure": ("params", "flops"),
    "timeout": 600.0,  # seconds; the runner kills the case's process after this
    "threads": None,  # intra-op threads; None = all cores
    "compile": False,  # torch.compile / (jax always jits)
    "seed": 0,
    "quality": None,  # sampling + metrics settings (bench/quality/settings.py); None = defaults
}


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _measure(value):
    if not isinstance(value, (list, tuple)) or not value:
        return None, "a non-empty list of " + ", ".join(MEASUREMENTS)
    for i, name in enumerate(value):
        if name not in MEASUREMENTS or not isinstance(name, str):
            return (i, f"unknown measurement {show(name)}"), MEASUREMENTS
        if name in value[:i]:
            return (i, f"measurement {name!r} listed twice"), "each measurement once"
    return tuple(m for m in MEASUREMENTS if m in value), None


def _timeout(value):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return (float(value), None) if ok else (None, "a number of seconds > 0")


_CHECKS = {
    "backend": lambda v: (v, None) if isinstance(v, str) and v in BACKENDS else (None, BACKENDS),
    "device": lambda v: (v, None) if isinstance(v, str) and _DEVICE.fullmatch(v) else (None, DEVICES),
    "batch": lambda v: (v, None) if _int(v) and v >= 1 else (None, "an integer >= 1"),
    "measure": _measure,
    "timeout": _timeout,
    "threads": lambda v: (v, None) if v is None or (_int(v) and v >= 1) else (None, "an integer >= 1, or null (all cores)"),
    "compile": lambda v: (v, None) if isinstance(v, bool) else (None, "true or false"),
    "seed": lambda v: (v, None) if _int(v) and 0 <= v < MAX_SEED else (None, "an integer in [0, 2**32)"),
}


def check_setting(key: str, value, source: str, path: str):
    """The checked (normalized) value of one setting, or a SpecError at `path`."""
    if key == "quality":  # a nested mapping: it names its own key paths
        from bench.quality.settings import QualitySettings
        return None if value is None else QualitySettings.parse(value, source, path)
    checked, allowed = _CHECKS[key](value)
    if allowed is None:
        return checked
    if isinstance(checked, tuple):  # (index, problem) of a bad list item
        raise SpecError(source, f"{path}[{checked[0]}]", checked[1], allowed)
    problem = f"unknown {key} {show(value)}" if key in ("backend", "device") else f"bad {key} {show(value)}"
    raise SpecError(source, path, problem, allowed)


@dataclass(frozen=True)
class Case:
    id: str  # "<arch>/<preset>/<backend>/<device>/b<batch>[/t<threads>][/compiled][/s<seed>][/o<hash>]"
    index: int  # position in the expanded suite
    arch: str
    preset: str
    overrides: FrozenMapping  # config field -> value, nested for nested config dataclasses
    backend: str
    device: str
    batch: int
    measure: tuple[str, ...]  # in MEASUREMENTS order
    timeout_s: float = 600.0
    threads: int | None = None
    compile: bool = False
    seed: int = 0
    quality: object = None  # QualitySettings (sampling + metrics), or None for the defaults

    def __post_init__(self):
        if not isinstance(self.overrides, Mapping):
            raise SpecError(f"case {self.id!r}", "overrides", f"bad overrides {show(self.overrides)}", "a mapping")
        object.__setattr__(self, "overrides", FrozenMapping(self.overrides))
        object.__setattr__(self, "measure", tuple(self.measure))
        for key, value in [("backend", self.backend), ("device", self.device), ("batch", self.batch),
                           ("measure", self.measure), ("timeout", self.timeout_s), ("threads", self.threads),
                           ("compile", self.compile), ("seed", self.seed)]:
            check_setting(key, value, f"case {self.id!r}", key)
        object.__setattr__(self, "quality", check_setting("quality", self.quality, f"case {self.id!r}", "quality"))
        object.__setattr__(self, "timeout_s", float(self.timeout_s))
        object.__setattr__(self, "measure", tuple(m for m in MEASUREMENTS if m in self.measure))
        if self.device == "tpu" and self.backend == "torch":
            raise SpecError(f"case {self.id!r}", "device", "device 'tpu' needs backend 'jax'", "cpu, cuda, cuda:N, auto")
        if not (self.id and isinstance(self.arch, str) and isinstance(self.preset, str) and _int(self.index)):
            raise SpecError(f"case {self.id!r}", "(case)", "id, arch and preset must be strings, index an integer")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return dict(out, overrides=self.overrides.to_dict(), measure=list(self.measure),
                    quality=None if self.quality is None else self.quality.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Case:
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING]
        bad = sorted(set(data) - set(names)) or sorted(set(required) - set(data))
        if bad:
            raise SpecError("case dict", ", ".join(bad), "unknown or missing key(s)", names)
        return cls(**data)
