"""`resolution`, `channels` and `frames` as override keys for every family (bench/aliases.py)."""
import pytest

from bench import suite_file
from bench.suite_file import SpecError

SWEEP = """
name: aliases
defaults: {backend: torch, measure: [params]}
cases:
  - preset: {preset}
    matrix: {{override: [{{resolution: 32, EXTRA}}, {{resolution: 64, EXTRA}}]}}
"""


@pytest.mark.parametrize("preset,side", [("rin-tiny", "image_size"), ("dit-tiny", "input_size"),
                                         ("mdm-tiny", "levels"), ("agm-tiny", "network")])
def test_one_resolution_sweep_works_for_every_family(preset, side):
    # the tiny U-Nets attend at the 8 px feature map only: a sweep from 32 px names other sizes
    extra = {"agm-tiny": "network: {attention_resolutions: []}"}.get(preset, "")
    text = SWEEP.replace("{preset}", preset).replace("{{", "{").replace("}}", "}")
    suite = suite_file.loads(text.replace(", EXTRA", ", " + extra if extra else ""))
    sizes = []
    for case in suite.cases:
        shape = suite_file.resolve_config(case).input_shapes(1)["x"][0]
        shape = shape[0] if isinstance(shape[0], tuple) else shape  # NestedUNet: one (shape, dtype) per level
        assert case.overrides.to_dict()["resolution"] == shape[-2]
        sizes.append(shape[-2])
    assert sizes == [32, 64] and len({c.id for c in suite.cases}) == 2
    if side == "levels":  # the nest keeps its ratios
        assert suite_file.resolve_config(suite.cases[1]).resolutions == (64, 32)


def test_channels_and_frames_reach_the_family_field():
    def config(preset, override):
        text = f"name: a\ncases:\n  - {{preset: {preset}, backend: torch, measure: [params], override: {override}}}\n"
        return suite_file.resolve_config(suite_file.loads(text).cases[0])

    assert config("unet2d-tiny", "{channels: 1}").in_channels == 1
    assert config("dit-tiny", "{channels: 3}").in_channels == 3
    agm = config("agm-tiny", "{channels: 1, frames: 4}")
    assert (agm.network.in_channels, agm.network.out_channels, agm.network.frames) == (2, 1, 4)
    assert config("rin-tiny", "{channels: 1}").channels == 1  # RIN's own field: no alias needed
    with pytest.raises(SpecError, match=r"override\.frames: DiTConfig has no frames .*; allowed: resolution, "):
        config("dit-tiny", "{frames: 4}")
    with pytest.raises(SpecError, match=r"override\.resolution: resolution 33: the nest's sides"):
        config("mdm-tiny", "{resolution: 33}")


def test_describe_prints_the_override_keys_and_the_aliases(capsys):
    from bench.cli import main

    assert main(["describe", "dit-tiny"]) == 0
    out = capsys.readouterr().out
    assert "override keys: input_size, in_channels, " in out and "process.{" in out
    assert "aliases (any family): resolution -> input_size, channels -> in_channels" in out
