"""Flax weights to and from the canonical checkpoint form (bench/convert)."""

from __future__ import annotations

import numpy as np

from bench.backends.framework_free import Built
from bench.convert import canonical_to_flax, flax_to_canonical


def export_weights(built: Built, params=None) -> dict[str, np.ndarray]:
    """The `params` collection (default: the built model's) in the canonical checkpoint form."""
    return flax_to_canonical(built.params["params"] if params is None else params)


def load_weights(built: Built, canonical: dict[str, np.ndarray]) -> None:
    built.params = {**built.params, "params": canonical_to_flax(canonical, built.params["params"])}


def params_from(canonical: dict[str, np.ndarray], like) -> dict:
    """A canonical checkpoint as a `params` collection shaped like `like` (e.g. to start an EMA)."""
    return canonical_to_flax(canonical, like)
