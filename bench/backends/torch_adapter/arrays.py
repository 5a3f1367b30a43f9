"""Torch arrays: canonical channels-last numpy in, channels-first tensors on the device, and back."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.backends.framework_free import X_LIKE, Built, random_inputs, tree_map


def device_arrays(built: Built, arrays: dict[str, np.ndarray | None]) -> dict[str, torch.Tensor | None]:
    """Canonical numpy arrays -> tensors on the device; data-shaped ones to channels-first."""
    def move(name, a):
        a = np.moveaxis(a, -1, 1) if name in X_LIKE and a.ndim >= 4 else a
        return torch.from_numpy(np.ascontiguousarray(a)).to(built.device)

    return {name: tree_map(lambda a: move(name, a), a) for name, a in arrays.items()}


def make_inputs(built: Built, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Model inputs of config.input_shapes(batch), drawn on the host and moved/transposed once."""
    shapes = built.config.input_shapes(batch)
    return device_arrays(built, random_inputs(shapes, seed, built.config.num_classes))


def all_finite(x: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors(x))


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A tensor back in the canonical channels-last layout when it is image/video shaped (a list:
    each of its tensors)."""
    if isinstance(x, (list, tuple)):
        return [to_numpy(a) for a in x]
    a = x.detach().cpu().numpy()
    return np.moveaxis(a, 1, -1) if a.ndim >= 4 else a


def tensors(x: Any) -> list[torch.Tensor]:
    """The tensors in x (a tensor, or a dict / list / tuple of them, nested)."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in tensors(v)]
    return []
