import pytest
from hypothesis import settings

# Shared 2-core machines are noisy: a per-example deadline would fail on load, not on a bug.
settings.register_profile("diffbench", deadline=None)
settings.load_profile("diffbench")


# `make test-fast`: the edit-test loop's subset (spec, overrides, registry, reports, statistics,
# process and training math; no suite runs of real models, no FLOP-counter processes). About
# 1 min of CPU; the whole suite (`make test`) stays what CI runs.
FAST_MODULES = {
    "test_aliases", "test_cli_finish", "test_compare", "test_conformance_kit", "test_contention", "test_data",
    "test_data_folders", "test_overrides", "test_process", "test_process_discrete", "test_quality_fd",
    "test_quality_settings", "test_quality_uncertainty", "test_records", "test_registry", "test_report",
    "test_spec", "test_spec_properties", "test_timing", "test_train_math",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in FAST_MODULES:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def _restore_plugin_failures():
    """A plugin that fails to import is remembered for the whole process (architectures/plugin_failures.py)
    and named in every later "unknown architecture/preset" error; a test that makes one fail on purpose
    must not change what later tests' error messages say. Restores the loader's failure and warned-once
    records after each test (the architectures a test registers are its own fixtures' business)."""
    from architectures import plugin_failures, plugins

    failed, warned = dict(plugin_failures.FAILED), set(plugins._WARNED)
    yield
    plugin_failures.FAILED.clear()
    plugin_failures.FAILED.update(failed)
    plugins._WARNED.clear()
    plugins._WARNED.update(warned)
