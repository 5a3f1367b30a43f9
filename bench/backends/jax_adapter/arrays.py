"""Jax arrays: canonical channels-last numpy in (the layout the Flax models take), device
arrays out, and back."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.backends.framework_free import Built, random_inputs, tree_map


def device_arrays(built: Built, arrays: dict[str, np.ndarray | None]) -> dict[str, jax.Array | None]:
    return {n: None if a is None else jax.device_put(a, built.device) for n, a in arrays.items()}


def make_inputs(built: Built, batch: int, seed: int = 0) -> dict[str, jax.Array]:
    shapes = built.config.input_shapes(batch)
    return device_arrays(built, random_inputs(shapes, seed, built.config.num_classes))


def all_finite(x: Any) -> bool:
    return all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(x))


def to_numpy(x) -> np.ndarray:
    return tree_map(np.asarray, x)
