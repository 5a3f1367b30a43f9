"""The `quality:` suite setting: validated at load with key paths, part of the case id."""
import pytest


def test_quality_settings_errors_name_the_key_path():
    from bench import suite_file
    from bench.strict_yaml import SpecError

    base = "cases:\n  - preset: unet2d-tiny\n    measure: [quality]\n    quality: {}\n"
    case, = suite_file.loads(base.replace("{}", "{metrics: [kid], n: 8, steps: 4}")).cases
    assert case.quality.metrics == ("kid",) and case.quality.n == 8 and "/q" in case.id
    assert suite_file.Case.from_dict(case.to_dict()) == case
    for bad, path in [("{metrics: [fid, fidd]}", "quality.metrics[1]"), ("{n: 1}", "quality.n"),
                      ("{steps: 0}", "quality.steps"), ("{colour: 1}", "quality.colour"), ("[kid]", "quality")]:
        with pytest.raises(SpecError) as err:
            suite_file.loads(base.replace("{}", bad), "s.yaml")
        assert err.value.path == f"cases[0].{path}", (bad, err.value)
