"""Property tests: whatever is thrown at the suite loader, it returns valid cases or raises SpecError."""

from __future__ import annotations

import dataclasses
import json
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from architectures import plugins, registry
from architectures.processes.config import SCHEDULES
from bench import suite_file
from bench.case import MEASUREMENTS
from tests.spec_helpers import FAKE_PRESETS, fake_registry  # noqa: F401

# --- property tests -----------------------------------------------------------------------

VOCAB_KEYS = [*suite_file.TOP_KEYS, *suite_file.CASE_KEYS, "width", "process", "schedule", "extra", "depth", "heads", "mults"]
VOCAB_VALUES = [*FAKE_PRESETS, "rin-tiny", "unet2d-tiny", "fakenet", "fakeuni", "rin", *registry.BACKENDS,
                "cpu", "tpu", "cuda:0", "auto", "gpu", *MEASUREMENTS, "sigmoid", "tests.no_such_plugin"]
SAFE_PLUGINS = {"tests.fake_arch"}


def _load_plugins_offline(modules=()):
    """No hypothesis-made module name is ever imported: only SAFE_PLUGINS 'import'."""
    for module in modules:
        if module not in SAFE_PLUGINS:
            raise registry.RegistryError(f"plugin module {module!r} could not be imported")
    return list(modules)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8), st.sampled_from(VOCAB_VALUES))
keys = st.one_of(st.sampled_from(VOCAB_KEYS), st.text(max_size=6))
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(keys, inner, max_size=5)), max_leaves=25)
settings_values = {
    "backend": st.sampled_from([*registry.BACKENDS, "mlx"]),
    "device": st.sampled_from(["cpu", "tpu", "auto", "cuda:1", "gpu"]),
    "batch": st.integers(-1, 4),
    "measure": st.lists(st.sampled_from([*MEASUREMENTS, "fid"]), max_size=3),
    "timeout": st.one_of(st.integers(-1, 5), st.floats(0.1, 10)),
    "threads": st.one_of(st.none(), st.integers(0, 3)),
    "compile": st.booleans(),
    "seed": st.integers(-1, 3),
    "override": st.dictionaries(st.sampled_from(["width", "heads", "dropout", "mults", "process", "extra", "num_blocks"]),
                                st.one_of(st.integers(0, 16), st.floats(0, 1), st.lists(st.integers(1, 3), max_size=3),
                                          st.fixed_dictionaries({}, optional={"schedule": st.sampled_from(SCHEDULES),
                                                                              "depth": st.integers(0, 3)})), max_size=2),
    "preset": st.sampled_from([*FAKE_PRESETS, "rin-tiny", "nope"]),
    "arch": st.sampled_from(["fakenet", "fakeuni", "rin", "nope"]),
}


@st.composite
def near_valid_suites(draw):
    """Mostly well-formed suites with a few bad values, so both outcomes are common."""
    def setting_block(names):
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
        return {k: draw(settings_values[k]) for k in chosen}

    cases = []
    for _ in range(draw(st.integers(1, 3))):
        case = {"preset": draw(settings_values["preset"]), **setting_block(list(settings_values)[:-1])}
        axes = draw(st.lists(st.sampled_from(["backend", "device", "batch", "seed"]), unique=True, max_size=2))
        if axes:
            case["matrix"] = {k: draw(st.lists(settings_values[k], max_size=2)) for k in axes if k not in case}
        cases.append(case)
    top = {"cases": cases, "defaults": setting_block(list(settings_values)[:8])}
    if draw(st.booleans()):
        top["plugins"] = draw(st.lists(st.sampled_from([*SAFE_PLUGINS, "tests.no_such_plugin"]), max_size=1))
    return top


def check_outcome(text: str) -> bool:
    """loads either returns valid cases or raises SpecError; True when it returned a suite."""
    try:
        suite = suite_file.loads(text, "fuzz.yaml")
    except suite_file.SpecError as exc:
        assert str(exc).startswith("fuzz.yaml: ") and "\n" not in str(exc)
        return False
    assert len({c.id for c in suite.cases}) == len(suite.cases) > 0
    for i, case in enumerate(suite.cases):
        assert isinstance(case, suite_file.Case) and case.index == i
        assert suite_file.Case.from_dict(json.loads(json.dumps(case.to_dict()))) == case
        assert case.backend in registry.get(case.arch).backends
        assert dataclasses.is_dataclass(suite_file.resolve_config(case))
    return True


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_property_random_structures_never_crash():
    with mock.patch.object(plugins, "load_plugins", _load_plugins_offline):
        @FUZZ
        @given(st.one_of(trees, st.fixed_dictionaries({"cases": trees}, optional={"defaults": trees})))
        def run(tree):
            check_outcome(yaml.safe_dump(tree))
        run()


TOKENS = [*"abc:-[]{},&*!<>'\"\n #1e.", "\n  ", "- ", "cases:", "preset: ", "fakenet-tiny", "matrix:", "batch: ",
          "override: ", "width: ", "{process: {schedule: ", "defaults:", "&a ", "*a", "<<: ", "!!str ", "? ", "1e-3"]


def test_property_random_text_never_crashes():
    with mock.patch.object(plugins, "load_plugins", _load_plugins_offline):
        @FUZZ
        @given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
        def run(text):
            check_outcome(text)
        run()


def test_property_near_valid_suites_load_or_fail_cleanly():
    outcomes = []
    with mock.patch.object(plugins, "load_plugins", _load_plugins_offline):
        @FUZZ
        @given(near_valid_suites())
        def run(tree):
            outcomes.append(check_outcome(yaml.safe_dump(tree)))
        run()
    assert any(outcomes) and not all(outcomes), "the generator must produce both valid and invalid suites"
