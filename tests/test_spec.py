"""The suite loader: strict errors (file, key path, bad value, allowed values), grid expansion,
defaults, ids, plugins and the shipped suites."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import subprocess
import sys

import pytest

from architectures import plugins, registry
from architectures.processes.config import GaussianConfig
from bench import suite_file
from bench.case import DEVICES, MEASUREMENTS
from bench.plan import format_plan
from tests import fake_arch
from tests.spec_helpers import FAKE_PRESETS, ONE, REPO, assert_error, error, fake_registry  # noqa: F401


# --- duplicate and unknown keys -----------------------------------------------------------

@pytest.mark.parametrize("text, path, line", [
    ("cases: []\nname: a\ncases: []", "cases", 3),
    ("cases:\n  - preset: fakenet-tiny\n    batch: 1\n    batch: 2", "cases[0].batch", 4),
    ("cases:\n  - preset: fakenet-tiny\n    matrix:\n      batch: [1]\n      batch: [2]", "cases[0].matrix.batch", 5),
    ("cases:\n  - preset: fakenet-tiny\n    override:\n      process: {tau: 1.0, tau: 2.0}", "cases[0].override.process.tau", 4),
])
def test_duplicate_keys_are_rejected_with_path_and_lines(text, path, line):
    message = assert_error(text, path, "each key once")
    assert f"at line {line}" in message


@pytest.mark.parametrize("text, path, allowed", [
    ("cases: [{preset: fakenet-tiny}]\nsuite: x", "suite", suite_file.TOP_KEYS),
    ("cases: [{preset: fakenet-tiny, batches: 2}]", "cases[0].batches", suite_file.CASE_KEYS),
    ("cases: [{preset: fakenet-tiny, matrix: {measure: [[params]]}}]", "cases[0].matrix.measure", suite_file.MATRIX_KEYS),
    ("defaults: {preset: fakenet-tiny}\n" + ONE, "defaults.preset", suite_file.DEFAULT_KEYS),
    ("defaults: {matrix: {preset: [fakenet-tiny]}}\n" + ONE, "defaults.matrix.preset", suite_file.DEFAULT_MATRIX_KEYS),
    ("cases: [{preset: fakenet-tiny, override: {widht: 3}}]", "cases[0].override.widht",
     [f.name for f in dataclasses.fields(fake_arch.FakeConfig)]),
    ("cases: [{preset: fakenet-tiny, override: {process: {steps: 3}}}]", "cases[0].override.process.steps",
     [f.name for f in dataclasses.fields(GaussianConfig)]),
    ("cases: [{preset: fakenet-tiny, matrix: {override: [{}, {extra: {deep: 1}}]}}]",
     "cases[0].matrix.override[1].extra.deep", ["depth", "gate"]),
])
def test_unknown_keys_list_the_allowed_keys(text, path, allowed):
    message = assert_error(text, path, *allowed)
    assert repr(path.rsplit(".", 1)[-1]) in message


# --- wrong types and bad values -----------------------------------------------------------

@pytest.mark.parametrize("text, path, bad, allowed", [
    ("cases: [{preset: fakenet-tiny, batch: two}]", "cases[0].batch", "'two'", "an integer in [1, 1048576]"),
    ("cases: [{preset: fakenet-tiny, batch: 0}]", "cases[0].batch", "0", "an integer in [1, 1048576]"),
    ("cases: [{preset: fakenet-tiny, batch: true}]", "cases[0].batch", "True", "an integer in [1, 1048576]"),
    ("cases: [{preset: fakenet-tiny, timeout: -1}]", "cases[0].timeout", "-1", "seconds in (0, 604800]"),
    ("cases: [{preset: fakenet-tiny, threads: 0}]", "cases[0].threads", "0", "null (all cores)"),
    ("cases: [{preset: fakenet-tiny, compile: 'yes'}]", "cases[0].compile", "'yes'", "reduce-overhead"),
    ("cases: [{preset: fakenet-tiny, seed: -3}]", "cases[0].seed", "-3", "[0, 2**32)"),
    ("cases: [{preset: fakenet-tiny, measure: params}]", "cases[0].measure", "'params'", "a non-empty list"),
    ("cases: [{preset: fakenet-tiny, measure: [params, params]}]", "cases[0].measure[1]", "'params'", "once"),
    ("cases: [{preset: 3}]", "cases[0].preset", "3", "a preset name"),
    ("cases: [{preset: fakenet-tiny, override: [width, 3]}]", "cases[0].override", "['width', 3]", "a mapping"),
    ("cases: [{preset: fakenet-tiny, matrix: {batch: 2}}]", "cases[0].matrix.batch", "2", "a list of batch"),
    ("cases: {preset: fakenet-tiny}", "cases", "{'preset'", "a list of mappings"),
    ("cases: [fakenet-tiny]", "cases[0]", "'fakenet-tiny'", "preset"),
    ("- preset: fakenet-tiny", "(top level)", "[{'preset'", "cases"),
    ("name: 'my suite'\n" + ONE, "name", "'my suite'", "letters, digits"),
    ("plugins: tests.plugin_arch\n" + ONE, "plugins", "'tests.plugin_arch'", "a list of module names"),
    ("cases: [{preset: fakenet-tiny, override: {width: '8'}}]", "cases[0].override.width", "'8'", "an integer"),
    ("cases: [{preset: fakenet-tiny, override: {dropout: true}}]", "cases[0].override.dropout", "True", "a number"),
    ("cases: [{preset: fakenet-tiny, override: {use_attention: 1}}]", "cases[0].override.use_attention", "1",
     "true or false"),
    ("cases: [{preset: fakenet-tiny, override: {mults: [1, 2.5]}}]", "cases[0].override.mults[1]", "2.5",
     "an integer"),
    ("cases: [{preset: fakenet-tiny, override: {pair: [1]}}]", "cases[0].override.pair", "[1]", "a list of 2"),
    ("cases: [{preset: fakenet-tiny, override: {heads: x}}]", "cases[0].override.heads", "'x'",
     "an integer or null"),
    ("cases: [{preset: fakenet-tiny, override: {norm: batch}}]", "cases[0].override.norm", "'batch'", "'layer'"),
    ("cases: [{preset: fakenet-tiny, override: {process: 3}}]", "cases[0].override.process", "3", "schedule"),
    ("cases: [{preset: fakenet-tiny, override: {label: null}}]", "cases[0].override.label", "None", "a string"),
])
def test_wrong_types_name_the_bad_value_and_the_allowed_ones(text, path, bad, allowed):
    message = assert_error(text, path, allowed)
    assert bad in message.split("; allowed: ")[0], message


@pytest.mark.parametrize("text, path, allowed", [
    ("cases: [{arch: fakenett, preset: fakenet-tiny}]", "cases[0].arch", ["fakenet", "fakeuni", "rin"]),
    ("cases: [{arch: fakenet, preset: fakeuni-tiny}]", "cases[0].preset", sorted(fake_arch.PRESETS)),
    ("cases: [{preset: nope-tiny}]", "cases[0].preset", FAKE_PRESETS),
    ("cases: [{preset: fakenet-tiny, backend: mlx}]", "cases[0].backend", registry.BACKENDS),
    ("cases: [{preset: fakeuni-tiny, backend: jax}]", "cases[0].backend", ["torch"]),
    ("cases: [{preset: fakenet-tiny, matrix: {device: [cpu, gpu]}}]", "cases[0].matrix.device[1]", DEVICES),
    ("cases: [{preset: fakenet-tiny, device: 'cuda:x'}]", "cases[0].device", DEVICES),
    ("cases: [{preset: fakenet-tiny, measure: [params, fid]}]", "cases[0].measure[1]", MEASUREMENTS),
    ("defaults: {measure: [latency]}\n" + ONE, "defaults.measure[0]", MEASUREMENTS),
    ("cases: [{preset: shared-tiny}]", "cases[0].preset", FAKE_PRESETS),
])
def test_unknown_names_list_the_valid_names(text, path, allowed):
    assert_error(text, path, *allowed)


def test_ambiguous_preset_names_its_owners():
    assert "['fakenet', 'fakeuni']" in error("cases: [{preset: shared-tiny}]")
    case, = suite_file.loads("cases: [{arch: fakeuni, preset: shared-tiny}]").cases
    assert (case.arch, suite_file.resolve_config(case).width) == ("fakeuni", 2)


def test_empty_matrix_list_and_missing_preset():
    assert_error("cases: [{preset: fakenet-tiny, matrix: {batch: []}}]", "cases[0].matrix.batch", "non-empty list")
    assert_error("defaults: {matrix: {device: []}}\n" + ONE, "defaults.matrix.device", "non-empty list")
    assert_error("cases: [{batch: 2}]", "cases[0]", *FAKE_PRESETS)
    assert_error("cases: []", "cases", "a list of mappings")
    assert_error("", "(top level)", "cases")


def test_tpu_needs_jax():
    text = "cases: [{preset: fakenet-tiny, matrix: {backend: [jax, torch], device: [cpu, tpu]}}]"
    message = assert_error(text, "cases[0].matrix.device[1]", "cpu, cuda, cuda:N, auto")
    assert "torch" in message
    ok = suite_file.loads("cases: [{preset: fakenet-tiny, backend: jax, matrix: {device: [cpu, tpu, 'cuda:1', auto]}}]")
    assert [c.device for c in ok.cases] == ["cpu", "tpu", "cuda:1", "auto"]


def test_same_setting_in_case_and_matrix_is_ambiguous():
    assert_error("cases: [{preset: fakenet-tiny, batch: 2, matrix: {batch: [1, 4]}}]", "cases[0].matrix.batch",
                 "one place")
    assert_error("defaults: {seed: 1, matrix: {seed: [1, 2]}}\n" + ONE, "defaults.matrix.seed", "one place")


def test_yaml_syntax_and_file_errors(tmp_path):
    assert error("cases: [{preset: fakenet-tiny}", "s.yaml").startswith("s.yaml: line 1, column ")
    assert error("cases: [{<<: {preset: fakenet-tiny}}]").startswith("suite.yaml: cases[0]: merge keys")
    assert "not a string" in error("cases: [{preset: fakenet-tiny, 1: x}]")
    assert "recursive alias" in error("cases: &a [*a]")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(suite_file.SpecError, match=f"^{missing}: \\(file\\): cannot read"):
        suite_file.load(missing)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(suite_file.SpecError, match="not UTF-8"):
        suite_file.load(latin)


# --- expansion, defaults, ids -------------------------------------------------------------

def test_matrix_expands_as_a_cartesian_grid_with_unique_ids():
    suite = suite_file.loads("""
cases:
  - arch: fakenet
    override: {width: 16}
    matrix: {preset: [fakenet-tiny, fakenet-wide], backend: [torch, jax], batch: [1, 4, 8], device: [cpu, auto]}
  - preset: fakeuni-tiny
    matrix: {threads: [1, null], compile: [false, true], seed: [0, 7]}
""")
    assert len(suite.cases) == 2 * 2 * 3 * 2 + 2 * 2 * 2
    assert [c.index for c in suite.cases] == list(range(len(suite.cases)))
    assert len({c.id for c in suite.cases}) == len(suite.cases)
    grid = {(c.preset, c.backend, c.batch, c.device) for c in suite.cases if c.arch == "fakenet"}
    assert grid == set(itertools.product(["fakenet-tiny", "fakenet-wide"], ["torch", "jax"], [1, 4, 8], ["cpu", "auto"]))
    first = suite.cases[0]
    assert first.id.startswith("fakenet/fakenet-tiny/torch/cpu/b1/o") and len(first.id.rsplit("/o", 1)[1]) == 8
    knobs = {(c.threads, c.compile, c.seed): c.id for c in suite.cases if c.arch == "fakeuni"}
    assert knobs[(1, "default", 7)] == "fakeuni/fakeuni-tiny/torch/cpu/b1/t1/compiled/s7"
    assert knobs[(None, "none", 0)] == "fakeuni/fakeuni-tiny/torch/cpu/b1"


def test_defaults_apply_and_case_settings_win():
    suite = suite_file.loads("""
defaults:
  backend: jax
  batch: 3
  measure: [memory, params]
  timeout: 30
  threads: 2
  matrix: {device: [cpu, tpu]}
cases:
  - preset: fakenet-tiny
  - preset: fakenet-wide
    batch: 5
    timeout: 1.5
    matrix: {device: [auto]}
""")
    a, b, c = suite.cases
    assert (a.backend, a.batch, a.measure, a.timeout_s, a.threads, a.device) == ("jax", 3, ("params", "memory"), 30.0, 2, "cpu")
    assert b.device == "tpu"
    assert (c.batch, c.timeout_s, c.device, c.compile, c.seed) == (5, 1.5, "auto", "none", 0)
    builtin, = suite_file.loads(ONE).cases
    assert (builtin.backend, builtin.device, builtin.batch, builtin.measure, builtin.timeout_s, builtin.threads) == (
        "torch", "cpu", 1, ("params", "flops"), 600.0, None)


def test_ids_are_stable_and_ignore_how_an_override_is_written():
    a = suite_file.loads("cases: [{preset: fakenet-tiny, override: {dropout: 0, process: {tau: 2, schedule: sigmoid}}}]")
    b = suite_file.loads("cases: [{preset: fakenet-tiny, override: {process: {schedule: sigmoid, tau: 2.0}, dropout: 0.0}}]")
    c = suite_file.loads("cases: [{preset: fakenet-tiny, override: {dropout: 0.1}}]")
    assert a.cases[0].id == b.cases[0].id != c.cases[0].id
    assert a.cases[0].overrides == b.cases[0].overrides


def test_cases_differing_only_in_measure_get_readable_ids_and_true_duplicates_fail():
    suite = suite_file.loads("cases: [{preset: fakenet-tiny, measure: [flops]}, {preset: fakenet-tiny, measure: [train_step, params]}]")
    assert [c.id for c in suite.cases] == ["fakenet/fakenet-tiny/torch/cpu/b1/flops",
                                          "fakenet/fakenet-tiny/torch/cpu/b1/params+train_step"]
    message = assert_error("cases: [{preset: fakenet-tiny}, {preset: fakenet-wide}, {preset: fakenet-tiny, timeout: 5}]",
                           "cases[2]", "merge their measure lists")
    assert "already given by cases[0]" in message


def test_rounds_default_per_case_and_bad_values():
    suite = suite_file.loads("defaults: {rounds: 3}\ncases: [{preset: fakenet-tiny}, {preset: fakenet-wide, rounds: 1}]")
    assert [c.rounds for c in suite.cases] == [3, 1]
    builtin, = suite_file.loads(ONE).cases
    assert builtin.rounds == 5 and "/r" not in builtin.id  # rounds is not part of the case id
    assert suite_file.Case.from_dict(builtin.to_dict()) == builtin
    for text, path in [("cases: [{preset: fakenet-tiny, rounds: 0}]", "cases[0].rounds"),
                       ("cases: [{preset: fakenet-tiny, rounds: true}]", "cases[0].rounds"),
                       ("defaults: {rounds: 2.5}\n" + ONE, "defaults.rounds"),
                       ("cases: [{preset: fakenet-tiny, rounds: 101}]", "cases[0].rounds")]:
        assert "bad rounds" in assert_error(text, path, "an integer in [1, 100]")
    assert_error("cases: [{preset: fakenet-tiny, matrix: {rounds: [1, 5]}}]", "cases[0].matrix.rounds", "preset")
    assert "already given by cases[0]" in assert_error(
        "cases: [{preset: fakenet-tiny}, {preset: fakenet-tiny, rounds: 2}]", "cases[1]", "merge their measure lists")


def test_suite_metadata(tmp_path):
    path = tmp_path / "my-suite.yaml"
    path.write_text("description: two cases\nplugins: []\n" + ONE)
    suite = suite_file.load(path)
    assert (suite.name, suite.path, suite.description, suite.plugins) == ("my-suite", str(path), "two cases", ())
    assert suite.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert suite_file.loads("name: other\n" + ONE).name == "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.cases[0].batch = 2


def test_format_plan_lists_every_case():
    suite = suite_file.loads("cases: [{preset: fakenet-tiny, override: {width: 16}, matrix: {batch: [1, 2], backend: [torch, jax]}}]")
    plan = format_plan(suite)
    assert "4 case(s)" in plan.splitlines()[0]
    for case in suite.cases:
        assert case.id in plan
    assert plan.count('{"width": 16}') == 4

# --- plugins ------------------------------------------------------------------------------

@pytest.fixture
def plugin_cleanup():
    yield
    registry.unregister("plugnet")
    sys.modules.pop("tests.plugin_arch", None)


def test_suite_plugins_register_architectures_before_validation(plugin_cleanup):
    suite = suite_file.loads("plugins: [tests.plugin_arch]\ncases: [{preset: plugnet-tiny, backend: jax}]")
    assert suite.plugins == ("tests.plugin_arch",)
    assert suite.cases[0].arch == "plugnet"


def test_env_plugins(monkeypatch, plugin_cleanup, capsys):
    monkeypatch.setenv(registry.PLUGINS_ENV, " tests.plugin_arch , ")
    assert suite_file.loads("cases: [{preset: plugnet-tiny, backend: jax}]").cases[0].arch == "plugnet"
    # a failing DIFFBENCH_PLUGINS module is reported and breaks nothing else; a case that needs
    # an architecture it would have registered names it
    monkeypatch.setenv(registry.PLUGINS_ENV, "tests.no_such_plugin")
    assert suite_file.loads(ONE).cases
    assert "plugin 'tests.no_such_plugin' (DIFFBENCH_PLUGINS) failed to import" in capsys.readouterr().err
    try:
        message = assert_error("cases: [{preset: nonet-tiny}]", "cases[0].preset", "")
        assert "plugins that failed to import: tests.no_such_plugin" in message
    finally:
        plugins.forget("tests.no_such_plugin")


def test_bad_plugins_name_the_module():
    message = assert_error("plugins: [tests.no_such_plugin]\n" + ONE, "plugins[0]", "importable modules")
    assert "tests.no_such_plugin" in message
    assert_error("plugins: ['os; rm']\n" + ONE, "plugins[0]", "dotted module names")


# --- real architectures and shipped suites -----------------------------------------------

PAPER = {"paper-rin.yaml": ["rin"], "paper-unet.yaml": ["unet2d", "unet3d"]}


@pytest.mark.parametrize("name, archs", PAPER.items())
def test_paper_suites_cover_every_full_size_preset(name, archs):
    suite = suite_file.load(REPO / "suites" / name)
    full = {(a, p) for a in archs for p in registry.get(a).load_presets() if not p.endswith("-tiny")}
    assert {(c.arch, c.preset) for c in suite.cases} == full
    assert {c.backend for c in suite.cases} == {"torch", "jax"}
    for case in suite.cases:
        assert case.measure == ("params", "flops") and case.device == "cpu"
        assert suite_file.resolve_config(case) == registry.get(case.arch).preset(case.preset).config


def test_every_shipped_suite_loads():
    paths = sorted((REPO / "suites").glob("*.yaml"))
    assert {"smoke.yaml", *PAPER} <= {p.name for p in paths}
    for path in paths:
        suite = suite_file.load(path)
        assert suite.cases and len({c.id for c in suite.cases}) == len(suite.cases)


def test_listing_and_loading_import_neither_torch_nor_jax():
    code = ("import sys; from bench import suite_file; from bench.plan import format_plan; s = suite_file.load('suites/paper-unet.yaml'); "
            "s2 = suite_file.load('suites/paper-rin.yaml'); [suite_file.resolve_config(c) for c in s.cases + s2.cases]; "
            "format_plan(s); print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'jax', 'flax', 'numpy'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_docs_example_loads_and_expands_as_documented():
    text = (REPO / "docs" / "suites.md").read_text()
    example = re.search(r"## Example\n\n```yaml\n(.*?)```", text, re.S).group(1)
    claimed = int(re.search(r"This expands to [\d +]+= (\d+) cases", text).group(1))
    suite = suite_file.loads(example, "docs/suites.md")
    assert len(suite.cases) == claimed
    assert {c.arch for c in suite.cases} == {"rin", "unet2d"}
    for key in [*suite_file.TOP_KEYS, *suite_file.CASE_KEYS, *suite_file.MATRIX_KEYS]:  # every key is documented
        assert f"`{key}`" in text, key


def test_an_entry_with_a_broken_config_module_is_named():
    registry.register(registry.Entry(name="brokennet", config="tests.no_such_module:C", presets="tests.no_such_module:P",
                                     backends={"torch": "x:y"}, process="gaussian", flops="x:y", test_only=True))
    try:
        message = assert_error("cases: [{preset: brokennet-tiny}]", "cases[0].preset", "fakenet-tiny")
        assert "['brokennet'] could not be loaded" in message
        message = error("cases: [{arch: brokennet, preset: brokennet-tiny}]")
        assert message.startswith("suite.yaml: cases[0].preset: cannot load the presets of 'brokennet'")
        assert "ModuleNotFoundError" in message and "tests.no_such_module:P" in message
        assert suite_file.loads(ONE).cases[0].arch == "fakenet"  # other entries still load
    finally:
        registry.unregister("brokennet")


def test_suite_measurements_are_the_ones_the_worker_runs():
    from bench import measure

    assert tuple(measure.MEASUREMENTS) == suite_file.MEASUREMENTS == MEASUREMENTS
