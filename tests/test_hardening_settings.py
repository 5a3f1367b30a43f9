"""Settings a suite gets wrong are refused by `diffbench plan` (exit 2, one line naming the key
path and what is allowed), not minutes into the run; every loader message has the same shape;
a plugin cannot pollute plan's stdout or pass its own KeyboardInterrupt off as Ctrl-C."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from architectures import plugins
from tests.test_hardening import assert_one_clean_line, plan, run_cli

CASE = "defaults: {{backend: torch, batch: 2, threads: 1}}\ncases:\n  - {{preset: {preset}, measure: [{measure}], {extra}}}\n"
IMAGE, VIDEO = "unet2d-tiny", "unet3d-tiny"

# name -> (preset, measure, the case's extra keys, key path in the error, words in the error)
BAD_SETTINGS = {
    "train dataset that does not exist": (IMAGE, "train", "train: {dataset: nope, budget: {steps: 1}}",
                                          "cases[0].train.dataset", "allowed: digits, shapes"),
    "train dataset needs a root": (IMAGE, "train", "train: {dataset: cifar10, budget: {steps: 1}}",
                                   "cases[0].train.root", "needs `root:`"),
    "root for a built-in dataset": (IMAGE, "train", "train: {dataset: shapes, root: ., budget: {steps: 1}}",
                                    "cases[0].train.root", "built-in"),
    "root that does not exist": (IMAGE, "train", "train: {dataset: imagefolder, root: /no/such/dir, budget: {steps: 1}}",
                                 "cases[0].train.root", "no directory '/no/such/dir'"),
    "video data for an image model": (IMAGE, "train", "train: {dataset: moving-digits, budget: {steps: 1}}",
                                      "cases[0].train.dataset", "video dataset and the model takes images"),
    "image data for a video model": (VIDEO, "train", "train: {dataset: shapes, budget: {steps: 1}}",
                                     "cases[0].train.dataset", "image dataset and the model takes videos"),
    "more classes than the model": ("unet2d-tiny", "train", "train: {dataset: digits, budget: {steps: 1}}, "
                                    "override: {num_classes: 4}", "cases[0].train.dataset", "10 classes"),
    "train limit beyond the dataset": (IMAGE, "train", "train: {dataset: digits, limit: 5000, budget: {steps: 1}}",
                                       "cases[0].train.limit", "allowed: limit at most 1437"),
    "steps 1e18": (IMAGE, "train", "train: {dataset: shapes, budget: {steps: 1000000000000000000}}",
                   "cases[0].train.budget.steps", "28 hours"),
    "gflops 1e308": (IMAGE, "train", "train: {dataset: shapes, budget: {gflops: 1e308}}",
                     "cases[0].train.budget.gflops", "(0, 1e12]"),
    "train batch 1e9": (IMAGE, "train", "train: {dataset: shapes, batch: 1000000000, budget: {steps: 1}}",
                        "cases[0].train.batch", "[1, 1048576]"),
    "quality dataset that does not exist": (IMAGE, "quality", "quality: {dataset: nope}", "cases[0].quality.dataset",
                                            "allowed: digits"),
    "quality dataset needs a root": (IMAGE, "quality", "quality: {dataset: imagefolder}", "cases[0].quality.root",
                                     "needs `root:`"),
    "fvd on an image model": (IMAGE, "quality", "quality: {metrics: [kid, fvd]}", "cases[0].quality.metrics[1]",
                              "does not score images"),
    "fvd on too few frames": (VIDEO, "quality", "quality: {dataset: moving-digits, metrics: [fvd]}",
                              "cases[0].quality.metrics", "fvd reads 16 frames"),
    "image reference for a video model": (VIDEO, "quality", "quality: {dataset: shapes}", "cases[0].quality.dataset",
                                          "image dataset"),
    "default reference for a video model": (VIDEO, "quality", "timeout: 60", "cases[0].measure",
                                            "quality.dataset (the default)"),
    "quality n beyond the dataset": (IMAGE, "quality", "quality: {dataset: digits, n: 1000}", "cases[0].quality.n",
                                     "allowed: n at most 718"),
    "quality steps 1e12": (IMAGE, "quality", "quality: {steps: 1000000000000}", "cases[0].quality.steps",
                           "[1, 10000]"),
    "quality n 1e9": (IMAGE, "quality", "quality: {n: 1000000000}", "cases[0].quality.n", "50,000"),
}


@pytest.mark.parametrize("name", sorted(BAD_SETTINGS))
def test_bad_train_and_quality_settings_stop_plan(name, tmp_path, capsys, monkeypatch):
    preset, measure, extra, where, words = BAD_SETTINGS[name]
    code, err = plan(tmp_path, capsys, CASE.format(preset=preset, measure=measure, extra=extra))
    line = assert_one_clean_line(code, err, "suite.yaml", f": {where}: ", words)
    assert "; allowed: " in line


@pytest.mark.parametrize("metric,env", [("fid", "DIFFBENCH_INCEPTION"), ("kid-inception", "DIFFBENCH_INCEPTION")])
def test_a_metric_without_its_weights_stops_plan(metric, env, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(env, raising=False)
    text = CASE.format(preset=IMAGE, measure="quality", extra=f"quality: {{metrics: [{metric}]}}")
    assert_one_clean_line(*plan(tmp_path, capsys, text), "cases[0].quality.metrics", f"{env} is not set")
    monkeypatch.setenv(env, str(tmp_path / "missing.pt"))
    assert_one_clean_line(*plan(tmp_path, capsys, text), "missing.pt' is not a file")
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.setenv(env, str(tmp_path / "w.pt"))
    code, err = plan(tmp_path, capsys, text)
    assert code == 0, err  # named: plan passes (the digest is checked when the case runs)


def test_good_settings_still_plan(tmp_path, capsys):
    text = CASE.format(preset=IMAGE, measure="train, quality",
                       extra="train: {dataset: digits, limit: 1437, budget: {steps: 100000000}}, "
                             "quality: {dataset: digits, n: 718, steps: 10000}")
    code, err = plan(tmp_path, capsys, text)
    assert code == 0, err


numbers = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, 10**8, 10**8 + 1, 10**18]),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["1e308", "-1", ".5", "1e12"]))
setting_values = st.one_of(numbers.map(str), st.sampled_from(["null", "''", "[]", "{}", "yes", "x", "/no/such", ".",
                                                              "shapes", "digits", "moving-digits", "cifar10",
                                                              "imagefolder", "[fvd]", "[fid, kid]", "[kid]"]))
TRAIN_KEYS = ["dataset", "root", "limit", "batch", "warmup", "log_every", "lr", "ema", "budget.steps", "budget.gflops"]
QUALITY_KEYS = ["dataset", "root", "n", "steps", "batch", "metrics"]


def _mapping(items: dict) -> str:
    nested: dict = {}
    for key, value in items.items():
        head, _, tail = key.partition(".")
        if tail:
            nested[head] = f"{{{tail}: {value}}}"
        else:
            nested[key] = value
    return "{" + ", ".join(f"{k}: {v}" for k, v in nested.items()) + "}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(preset=st.sampled_from([IMAGE, VIDEO]),
       train=st.dictionaries(st.sampled_from(TRAIN_KEYS), setting_values, max_size=4),
       quality=st.dictionaries(st.sampled_from(QUALITY_KEYS), setting_values, max_size=3))
def test_property_hostile_train_and_quality_settings(preset, train, quality, tmp_path, capsys):
    """Whatever the train: and quality: settings, plan passes them or stops with one line naming
    a key path under the case; what passes is within the documented bounds."""
    train = {"dataset": "shapes" if preset == IMAGE else "moving-digits", "budget.steps": "1", **train}
    if "budget.steps" in train and "budget.gflops" in train:
        del train["budget.gflops"]
    text = CASE.format(preset=preset, measure="train, quality",
                       extra=f"train: {_mapping(train)}, quality: {_mapping(quality)}")
    code, err = plan(tmp_path, capsys, text)
    if code == 0:
        from bench import suite_file

        (case,) = suite_file.load(tmp_path / "suite.yaml").cases
        budget = case.train["budget"]
        assert budget.get("steps", 1) <= 10**8 and budget.get("gflops", 1) <= 1e12
        assert case.quality.n <= 100_000 and (case.quality.steps or 1) <= 10_000
        return
    line = assert_one_clean_line(code, err, "suite.yaml: cases[0].")
    assert "; allowed: " in line


# -- loader messages ---------------------------------------------------------------------------
def test_out_of_range_integers_keep_their_sign_and_digits(tmp_path, capsys):
    line = assert_one_clean_line(*plan(tmp_path, capsys, "cases: [{preset: rin-tiny, batch: -" + "9" * 30 + "}]"))
    assert "-999999999999...(30 digits)" in line
    line = assert_one_clean_line(*plan(tmp_path, capsys, "cases: [{preset: rin-tiny, batch: -0x" + "F" * 4400 + "}]"))
    assert "-0xffffffffffff...(4400 hex digits)" in line


@pytest.mark.parametrize("text,path", [("'': 1", "['']"), ("cases: [{preset: rin-tiny, '': 1}]", "cases[0]['']"),
                                       ("cases: [{preset: rin-tiny, 'a.b': 1}]", "cases[0]['a.b']")])
def test_an_empty_or_dotted_key_is_named_not_the_top_level(text, path, tmp_path, capsys):
    assert_one_clean_line(*plan(tmp_path, capsys, text), f"suite.yaml: {path}: unknown key")


YAML_TAGS = ["!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!map", "!!seq",
             "!!set", "!!omap", "!!pairs", "!!merge", "!!value", "!!yaml", "!!python/none", "!custom", "!!",
             "!<tag:x>", "&a", "*a", "*b", "&a [*a]"]
values = st.one_of(st.sampled_from(["x", "''", "1", "[]", "{}", "maybe", "1e999", "-" + "9" * 40, "[*a]"]),
                   st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8).map(repr))
documents = st.sampled_from([
    "cases: [{{preset: rin-tiny, batch: {v}}}]", "cases: {v}", "{v}", "name: {v}\ncases: [{{preset: rin-tiny}}]",
    "a: &a {v}\nb: *a\ncases: *a", "cases: [{{preset: rin-tiny, {v}: 1}}]",
    "cases: [{{preset: rin-tiny, override: {{{v}: 1}}}}]", "cases: [{{preset: {v}}}]", "---\n{v}\n---\n{v}",
    "cases: [{{preset: rin-tiny, matrix: {{batch: {v}}}}}]", "{v}: &x [*x]"])


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents, tag=st.sampled_from(YAML_TAGS + [""]), value=values)
def test_property_every_loader_message_says_what_is_allowed(document, tag, value, tmp_path, capsys):
    """Tags, anchors, aliases, names, keys: whatever breaks the suite, the line has the shape
    '<file>: <key path>: <problem>; allowed: <...>' and never blames the top level for a key."""
    code, err = plan(tmp_path, capsys, document.format(v=f"{tag} {value}".strip()))
    if code == 0:
        return
    line = assert_one_clean_line(code, err, "suite.yaml: ")
    assert "; allowed: " in line, line
    assert not re.search(r"\(top level\): unknown key ''", line), line


# -- plugins -------------------------------------------------------------------------------------
@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("noisy_plugin_mod", "interrupting_plugin_mod"):
        plugins.forget(name)


def test_a_plugin_printing_at_import_does_not_reach_plans_stdout(plugin_dir, capfd):
    (plugin_dir / "noisy_plugin_mod.py").write_text(
        "import os, sys\nprint('hello from the plugin')\nos.write(1, b'raw fd write\\n')\n")
    suite = plugin_dir / "s.yaml"
    suite.write_text("plugins: [noisy_plugin_mod]\ncases: [{preset: rin-tiny}]\n")
    from bench import cli

    assert cli.main(["plan", str(suite)]) == 0
    out, err = capfd.readouterr()
    assert "hello from the plugin" not in out and "raw fd write" not in out
    assert "hello from the plugin" in err and "raw fd write" in err
    assert out.startswith("suite s: 1 case(s)")


def test_a_plugin_raising_keyboardinterrupt_is_a_plugin_failure(plugin_dir, capsys):
    (plugin_dir / "interrupting_plugin_mod.py").write_text("raise KeyboardInterrupt\n")
    suite = plugin_dir / "s.yaml"
    suite.write_text("plugins: [interrupting_plugin_mod]\ncases: [{preset: rin-tiny}]\n")
    code, err = run_cli(["plan", str(suite)], capsys)
    assert_one_clean_line(code, err, "plugins[0]", "interrupting_plugin_mod", "KeyboardInterrupt")


def test_a_real_sigint_during_a_plugin_import_still_interrupts(plugin_dir, capsys):
    (plugin_dir / "interrupting_plugin_mod.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n")
    suite = plugin_dir / "s.yaml"
    suite.write_text("plugins: [interrupting_plugin_mod]\ncases: [{preset: rin-tiny}]\n")
    code, err = run_cli(["plan", str(suite)], capsys)
    assert code == 130 and "interrupted" in err
