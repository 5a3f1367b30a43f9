"""Config overrides in suites: typed against the config dataclass, applied with replace (so the
config's own checks run), and cases that carry them round-trip through JSON to the worker."""

from __future__ import annotations

import dataclasses
import json

import pytest

from architectures import registry
from architectures.processes.config import SCHEDULES, GaussianConfig
from bench import suite_file
from tests import fake_arch
from tests.spec_helpers import ONE, assert_error, error, fake_registry  # noqa: F401

# --- overrides and resolve_config ---------------------------------------------------------

def test_overrides_build_the_config_with_replace():
    text = """
cases:
  - preset: fakenet-wide
    override: {dropout: 1e-1, mults: [1, 2, 4], pair: [3, 2], extra: {depth: 3}, process: {schedule: sigmoid, tau: 2}}
    matrix: {override: [{heads: 4}, {process: {tau: 0.5}, extra: null}]}
"""
    first, second = suite_file.loads(text).cases
    preset = fake_arch.PRESETS["fakenet-wide"].config
    want_first = dataclasses.replace(
        preset, dropout=0.1, mults=(1, 2, 4), pair=(3, 2.0), extra=fake_arch.Inner(depth=3), heads=4,
        process=GaussianConfig(schedule="sigmoid", tau=2.0))
    want_second = dataclasses.replace(want_first, heads=8, extra=None, process=GaussianConfig(schedule="sigmoid", tau=0.5))
    assert suite_file.resolve_config(first) == want_first
    assert suite_file.resolve_config(second) == want_second
    assert isinstance(suite_file.resolve_config(first).pair[1], float)
    assert second.overrides.to_dict()["process"] == {"schedule": "sigmoid", "tau": 0.5}


@pytest.mark.parametrize("override, path, says", [
    ("{width: 0}", "cases[0].override", "width=0"),
    ("{heads: 3}", "cases[0].override", "heads=3 must divide width=8"),
    ("{process: {schedule: bogus}}", "cases[0].override.process", str(list(SCHEDULES))),
    ("{process: {schedule: sigmoid, start: 1.0, end: 0.5}}", "cases[0].override.process", "must be <"),
    ("{extra: {depth: x}}", "cases[0].override.extra.depth", "an integer"),
])
def test_config_post_init_errors_become_spec_errors(override, path, says):
    message = error(f"cases: [{{preset: fakenet-tiny, override: {override}}}]")
    assert message.startswith(f"suite.yaml: {path}: ") and says in message, message


def test_matrix_override_errors_point_at_the_matrix_item():
    text = "cases: [{preset: fakenet-tiny, override: {width: 16}, matrix: {override: [{heads: 4}, {heads: 'x'}]}}]"
    assert_error(text, "cases[0].matrix.override[1].heads", "an integer or null")


# --- cases travel as JSON ----------------------------------------------------------------

def test_case_round_trips_through_json():
    suite = suite_file.loads("""
cases:
  - preset: fakenet-tiny
    override: {mults: [2, 2], process: {tau: 3}, extra: {gate: true}}
    timeout: 12
    matrix: {backend: [torch, jax], threads: [1, null], compile: [true], seed: [5]}
""")
    for case in suite.cases:
        data = json.loads(json.dumps(case.to_dict()))
        assert data["overrides"]["mults"] == [2, 2]
        again = suite_file.Case.from_dict(data)
        assert again == case and hash(again) == hash(case)
        assert suite_file.resolve_config(again) == suite_file.resolve_config(case)


@pytest.mark.parametrize("change", [{"backend": "mlx"}, {"device": "tpu"}, {"batch": 0}, {"measure": ["fid"]},
                                    {"timeout_s": 0}, {"threads": 0}, {"color": 1}])
def test_from_dict_rejects_invalid_cases(change):
    data = suite_file.loads(ONE).cases[0].to_dict()
    with pytest.raises(ValueError):
        suite_file.Case.from_dict({**data, **change})


def test_overrides_against_the_real_rin_config():
    text = """
cases:
  - preset: rin-tiny
    override: {num_blocks: 3, dropout: 0.1, process: {schedule: sigmoid, start: -3, end: 3, tau: 1.1}}
    matrix: {backend: [torch, jax]}
"""
    torch_case, jax_case = suite_file.loads(text).cases
    base = registry.get("rin").preset("rin-tiny").config
    want = dataclasses.replace(base, num_blocks=3, dropout=0.1, process=dataclasses.replace(
        base.process, schedule="sigmoid", start=-3.0, end=3.0, tau=1.1))
    assert suite_file.resolve_config(torch_case) == suite_file.resolve_config(jax_case) == want
    assert "allowed: ['gamma']" in error("cases: [{preset: rin-tiny, override: {process: {time_input: t}}}]")
    assert_error("cases: [{preset: rin-tiny, override: {latent_dim: '64'}}]", "cases[0].override.latent_dim", "an integer")


def test_overrides_against_the_real_unet_config():
    text = """
cases:
  - arch: unet2d
    preset: unet2d-tiny
    matrix:
      override: [{channel_mult: [1, 2, 2], attention_resolutions: [4], num_res_blocks: 2}, {dropout: 0.25}]
"""
    first, second = suite_file.loads(text).cases
    base = registry.get("unet2d").preset("unet2d-tiny").config
    assert suite_file.resolve_config(first) == dataclasses.replace(
        base, channel_mult=(1.0, 2.0, 2.0), attention_resolutions=(4,), num_res_blocks=2)
    assert suite_file.resolve_config(second) == dataclasses.replace(base, dropout=0.25)
    assert_error("cases: [{preset: unet2d-tiny, override: {attention_resolutions: 8}}]",
                 "cases[0].override.attention_resolutions", "a list of (an integer)")
    message = error("cases: [{preset: unet2d-tiny, override: {image_size: 17}}]")
    assert message.startswith("suite.yaml: cases[0].override: invalid UNetConfig: image_size=17 must be divisible")


def test_case_overrides_are_frozen_and_hashable():
    case, = suite_file.loads("cases: [{preset: fakenet-tiny, override: {mults: [1, 2], process: {tau: 2}}}]").cases
    with pytest.raises(TypeError):
        case.overrides["width"] = 3
    with pytest.raises(AttributeError):
        case.overrides.to_dict = None
    assert case.overrides["mults"] == (1, 2) and case.overrides["process"]["tau"] == 2.0
    thawed = case.overrides.to_dict()
    thawed["process"]["tau"] = 5.0  # a plain copy: the case does not change
    assert case.overrides["process"]["tau"] == 2.0
    assert len({case, suite_file.Case.from_dict(case.to_dict())}) == 1


def test_bare_tuple_fields_take_any_json_like_items():
    case, = suite_file.loads("cases: [{preset: fakenet-tiny, override: {tags: [a, 1, [2.5, null], {k: true}]}}]").cases
    assert suite_file.resolve_config(case).tags == ("a", 1, (2.5, None), {"k": True})
    assert_error("cases: [{preset: fakenet-tiny, override: {tags: [.nan]}}]", "cases[0].override.tags[0]",
                 "any JSON-like value")
