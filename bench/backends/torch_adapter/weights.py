"""Torch weights to and from the canonical checkpoint form (bench/convert)."""

from __future__ import annotations

import numpy as np

from bench.backends.framework_free import Built
from bench.convert import canonical_to_torch, torch_to_canonical


def export_weights(built: Built, ema: dict | None = None) -> dict[str, np.ndarray]:
    """The model's weights (EMA values where `ema` has them) in the canonical checkpoint form."""
    state = built.model.state_dict()
    return torch_to_canonical({**state, **(ema or {})})


def load_weights(built: Built, canonical: dict[str, np.ndarray]) -> None:
    built.model.load_state_dict(canonical_to_torch(canonical, built.model))


def state_from(built: Built, canonical: dict[str, np.ndarray]) -> dict:
    """A canonical checkpoint as the model's state dict (e.g. to start an EMA from it)."""
    return canonical_to_torch(canonical, built.model)
