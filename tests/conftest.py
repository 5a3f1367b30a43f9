from hypothesis import settings

# Shared 2-core machines are noisy: a per-example deadline would fail on load, not on a bug.
settings.register_profile("diffbench", deadline=None)
settings.load_profile("diffbench")
