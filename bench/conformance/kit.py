"""The conformance kit's driver: which checks apply to an entry, the shared state they use (the
preset's config, canonical inputs, models with perturbed weights, built once), and the report.

Every check is a function `check(kit, backend)` that returns a detail string on success and
raises `Fail` (numbers in the message) or `Skip` (the reason); any other exception is a failure
too, reported with its type. Nothing about a family is hard-coded: inputs come from
`config.input_shapes`, the call extras and the process from the registry entry.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from architectures import registry
from bench.conformance.checks import CHECKS
from bench.conformance.rules import BATCH, Fail, Skip

PERTURB = 0.05  # every weight moved off its init: zero-init layers would make parity trivial


@dataclass
class Result:
    check: str
    status: str  # "pass" | "fail" | "skip"
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        return f"  {self.status.upper():4s}  {self.check:<17s} {self.detail}"  # check@preset: another preset


@dataclass
class Report:
    arch: str
    preset: str
    backends: list[str]
    process: str
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status != "fail" for r in self.results)

    def text(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("pass", "fail", "skip")}
        others = sorted({r.check.partition("@")[2] for r in self.results if "@" in r.check})
        head = (f"{self.arch} (preset {self.preset}; backends {', '.join(self.backends)}; process {self.process})"
                + (f"; {', '.join(PER_PRESET)} on its {len(others)} other preset(s)" if others else ""))
        tail = f"{len(self.results)} checks: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
        return "\n".join([head, *(r.line() for r in self.results), tail])

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok})


def tiny_preset(entry) -> str:
    tiny = sorted(p for p in entry.load_presets() if p.endswith("-tiny"))
    if not tiny:
        raise registry.RegistryError(f"{entry.name!r} has no '-tiny' preset; allowed: --preset with one of "
                                     f"{', '.join(sorted(entry.load_presets()))}")
    return tiny[0]


class Kit:
    """One entry + preset; models and inputs built lazily and shared by the checks."""

    def __init__(self, entry, preset: str | None = None, backends=None, plugins=()):
        self.entry = entry
        self.preset = preset or tiny_preset(entry)
        self.config = entry.preset(self.preset).config
        chosen = backends or registry.BACKENDS
        self.backends = [b for b in registry.BACKENDS if b in entry.backends and b in chosen]
        self.plugins = tuple(plugins)
        self._cache: dict = {}

    # -- which checks -------------------------------------------------------------------
    def check_names(self) -> list[str]:
        names = []
        for name, _, per_backend in CHECKS:
            names += [f"{name}:{b}" for b in self.backends] if per_backend else [name]
        return names

    def run(self, check: str) -> Result:
        base, _, backend = check.partition(":")
        fn = {name: f for name, f, _ in CHECKS}[base]
        started = time.perf_counter()
        try:
            status, detail = "pass", fn(self, backend or None)
        except Skip as exc:
            status, detail = "skip", str(exc)
        except Fail as exc:
            status, detail = "fail", str(exc)
        except Exception as exc:  # a crashing check is a failed check, with what crashed
            status, detail = "fail", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return Result(check, status, detail, time.perf_counter() - started)

    # -- shared state ---------------------------------------------------------------------
    def cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def inputs(self) -> dict:
        """Canonical (channels-last numpy) inputs of config.input_shapes(BATCH)."""
        from bench.backends import framework_free

        return self.cached("inputs", lambda: framework_free.random_inputs(self.config.input_shapes(BATCH), 3,
                                                               self.config.num_classes))

    def adapter(self, backend: str):
        from bench import backends

        return backends.get(backend)

    def perturbed(self, backend: str):
        """(built, variables): the backend's model at seed 0 with every weight moved by N(0, PERTURB^2)."""
        return self.cached(("perturbed", backend), lambda: _perturb(self, backend))

    def call(self, backend: str, arrays: dict, variables=None):
        """The raw model call (every input of input_shapes by name) -> numpy outputs, canonical layout."""
        built, own = self.perturbed(backend)
        adapter = self.adapter(backend)
        a = adapter.device_arrays(built, arrays)
        kwargs = {k: v for k, v in a.items() if k not in ("x", "t")}
        if backend == "torch":
            import torch

            with torch.no_grad():
                out = built.model(a["x"], a["t"], **kwargs)
        else:
            apply = self.cached("jax_apply", lambda: _jit_apply(built.model))
            out = apply(own if variables is None else variables, a["x"], a["t"], **kwargs)
        return _to_numpy(adapter, out)


def _perturb(kit: Kit, backend: str):
    """torch: init at seed 0, then perturbed. jax: the perturbed torch weights moved over by
    bench/convert.py when torch is checked too (no second init to compile; the parity check then
    compares the two calls), else its own init, perturbed."""
    adapter = kit.adapter(backend)
    rng = np.random.default_rng(1)
    if backend == "torch":
        import torch

        built = adapter.build(kit.entry, kit.config, seed=0)
        with torch.no_grad():
            for p in built.model.parameters():
                p.add_(torch.from_numpy(PERTURB * rng.standard_normal(tuple(p.shape)).astype(np.float32)))
        built.model.eval()
        return built, None
    import jax

    if "torch" in kit.backends:
        from bench import convert

        built = adapter.build(kit.entry, kit.config, seed=0, abstract=True)
        variables = convert.torch_to_flax(kit.perturbed("torch")[0].model.state_dict(), built.params)
        built.abstract = False
    else:
        built = adapter.build(kit.entry, kit.config, seed=0)
        variables = jax.tree.map(lambda p: p + PERTURB * rng.standard_normal(p.shape).astype(np.float32), built.params)
    built.params = variables
    return built, variables


def _jit_apply(model):
    import jax

    return jax.jit(lambda variables, x, t, **kw: model.apply(variables, x, t, **kw))


def _to_numpy(adapter, out):
    if isinstance(out, (tuple, list)):
        return type(out)(_to_numpy(adapter, o) for o in out)
    return adapter.to_numpy(out)


PER_PRESET = ("contract", "params")  # cheap (no weights materialized): run on every other preset too


def run(name: str, preset: str | None = None, backends=None, only=None, plugins=()) -> Report:
    """`diffbench check`: every check (or `only` those, by name or base name) on one entry's
    preset (`preset`, default its '-tiny' one); without `preset`, every other preset of the entry
    also gets the checks that build no weights (PER_PRESET), named `check@preset`."""
    entry = registry.get(name)
    kit = Kit(entry, preset, backends, plugins)
    report = Report(entry.name, kit.preset, kit.backends, entry.process)
    selected = kit.check_names()
    if only:
        unknown = [o for o in only if not any(o in (n, n.partition(":")[0]) for n in selected)]
        if unknown:
            raise registry.RegistryError(f"--only {unknown}: unknown check(s); allowed: {selected}")
        selected = [n for n in selected if n in only or n.partition(":")[0] in only]
    for check in selected:
        report.results.append(kit.run(check))
    if preset is None:
        sweep = [c for c in PER_PRESET if not only or c in only]
        for other in entry.load_presets():
            if other == kit.preset or not sweep:
                continue
            other_kit = Kit(entry, other, backends, plugins)
            for check in sweep:
                result = other_kit.run(check)
                result.check = f"{check}@{other}"
                report.results.append(result)
    return report
