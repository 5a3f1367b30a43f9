"""Shared by the suite-loader tests: the fake registry fixture and error-message checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import suite_file
from tests import fake_arch

REPO = Path(__file__).resolve().parents[1]
FAKE_PRESETS = sorted({*fake_arch.PRESETS, *fake_arch.PRESETS_UNI})
ONE = "cases: [{preset: fakenet-tiny}]"


@pytest.fixture(autouse=True)
def fake_registry():
    fake_arch.register()
    yield
    fake_arch.unregister()


def error(text: str, source: str = "suite.yaml") -> str:
    with pytest.raises(suite_file.SpecError) as info:
        suite_file.loads(text, source)
    message = str(info.value)
    assert "\n" not in message
    return message


def assert_error(text: str, path: str, *allowed: str) -> str:
    """One line: file, key path, then the allowed values after '; allowed:'."""
    message = error(text)
    assert message.startswith(f"suite.yaml: {path}: "), message
    for item in allowed:
        assert item in message.split("; allowed: ", 1)[1], (item, message)
    return message

