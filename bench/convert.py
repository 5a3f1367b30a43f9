"""Torch <-> Flax weight transfer by matching names and shapes.

Names: the Flax path `blocks_0/read/q/kernel` is the torch name `blocks.0.read.q.weight`. Both
sides are reduced to one canonical key: torch's numeric components (nn.ModuleList / Sequential
indices) are joined to the component before them with "_" (`blocks.0` -> `blocks_0`), and the
Flax leaf names `kernel`, `scale` and `embedding` become torch's `weight`.

Layouts (Flax -> torch), chosen by the Flax leaf name and rank:
- Dense `kernel` (I, O) -> `weight` (O, I)
- Conv `kernel` (k1, ..., kd, I, O) -> `weight` (O, I, k1, ..., kd)
- LayerNorm / GroupNorm `scale`, Embedding `embedding`, every `bias`, plain params: unchanged.
A family with another layout adds a `Rule` to `RULES` (first match wins).

Every unmatched or mis-shaped parameter on either side is listed in one `ConversionError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

FLAX_LEAF_TO_TORCH = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


class ConversionError(ValueError):
    """Parameters that could not be matched by name and shape; the message lists all of them."""


@dataclass(frozen=True)
class Rule:
    """A layout rule: applies to a Flax leaf with this name and rank; maps Flax arrays to torch and back."""

    leaf: str
    applies: Callable[[int], bool]  # rank -> bool
    to_torch: Callable[[np.ndarray], np.ndarray]
    to_flax: Callable[[np.ndarray], np.ndarray]


def _conv_to_torch(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (a.ndim - 1, a.ndim - 2, *range(a.ndim - 2)))


def _conv_to_flax(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, (*range(2, a.ndim), 1, 0))


RULES: list[Rule] = [
    Rule("kernel", lambda rank: rank == 2, lambda a: a.T, lambda a: a.T),  # Dense
    Rule("kernel", lambda rank: rank >= 3, _conv_to_torch, _conv_to_flax),  # Conv 1d/2d/3d
]


def _rule(leaf: str, rank: int) -> Rule | None:
    return next((r for r in RULES if r.leaf == leaf and r.applies(rank)), None)


def torch_key(name: str) -> str:
    """`blocks.0.read.q.weight` -> `blocks_0/read/q/weight`."""
    parts: list[str] = []
    for part in name.split("."):
        if re.fullmatch(r"\d+", part) and parts:
            parts[-1] = f"{parts[-1]}_{part}"
        else:
            parts.append(part)
    return "/".join(parts)


def flax_key(path: tuple[str, ...]) -> str:
    """(`blocks_0`, `read`, `q`, `kernel`) -> `blocks_0/read/q/weight`."""
    return "/".join((*path[:-1], FLAX_LEAF_TO_TORCH.get(path[-1], path[-1])))


def _flatten(tree: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) or hasattr(value, "items") and not hasattr(value, "shape"):
            flat.update(_flatten(dict(value.items()), (*prefix, str(key))))
        else:
            flat[(*prefix, str(key))] = value
    return flat


def _unflatten(flat: dict[tuple[str, ...], Any]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _unwrap(flax_params: dict) -> tuple[dict, bool]:
    """Accept either the `params` collection or a variables dict {'params': ...}."""
    if set(flax_params) == {"params"}:
        return flax_params["params"], True
    return flax_params, False


def _as_numpy(value) -> np.ndarray:
    """A numpy array; bfloat16 (which numpy and torch do not share) goes through float32."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    array = np.asarray(value)
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array


def _match(flax_flat: dict, torch_shapes: dict[str, tuple]) -> dict[tuple[str, ...], str]:
    """Flax path -> torch name, raising one ConversionError that lists every problem."""
    by_key = {torch_key(name): name for name in torch_shapes}
    pairs, problems = {}, []
    for path, value in flax_flat.items():
        name = by_key.pop(flax_key(path), None)
        if name is None:
            problems.append(f"flax {'/'.join(path)} {tuple(value.shape)}: no torch parameter {flax_key(path)!r}")
            continue
        rule = _rule(path[-1], len(value.shape))
        view = np.broadcast_to(np.uint8(0), tuple(value.shape))  # shape only, no memory
        expected = tuple(rule.to_torch(view).shape) if rule else tuple(value.shape)
        if expected != tuple(torch_shapes[name]):
            problems.append(f"{'/'.join(path)} -> {name}: flax {tuple(value.shape)} needs torch {expected}, "
                            f"got {tuple(torch_shapes[name])}")
        pairs[path] = name
    problems += [f"torch {name} {tuple(torch_shapes[name])}: no flax parameter" for name in by_key.values()]
    if problems:
        raise ConversionError(f"{len(problems)} parameter(s) do not match:\n  " + "\n  ".join(problems))
    return pairs


def _paired(flax_params: dict, torch_tensors: dict) -> tuple[dict, dict, bool]:
    """(flat Flax params, {Flax path: torch name}, whether the params were wrapped in {"params": ...}),
    every name and shape checked (_match)."""
    params, wrapped = _unwrap(flax_params)
    flat = _flatten(params)
    return flat, _match(flat, {name: tuple(t.shape) for name, t in torch_tensors.items()}), wrapped


def torch_to_flax(state_dict: dict, flax_params: dict) -> dict:
    """Flax params shaped like `flax_params` (arrays or abstract shapes) filled from a torch state_dict."""
    import jax.numpy as jnp

    flat, pairs, wrapped = _paired(flax_params, state_dict)
    out = {}
    for path, name in pairs.items():
        array = _as_numpy(state_dict[name])
        rule = _rule(path[-1], len(flat[path].shape))
        array = rule.to_flax(array) if rule else array
        out[path] = jnp.asarray(array, dtype=flat[path].dtype)
    tree = _unflatten(out)
    return {"params": tree} if wrapped else tree


def flax_to_torch(flax_params: dict, module_or_state_dict) -> dict:
    """A torch state_dict (tensors with the target's dtypes) filled from Flax params."""
    import torch

    target = module_or_state_dict.state_dict() if hasattr(module_or_state_dict, "state_dict") else module_or_state_dict
    flat, pairs, _ = _paired(flax_params, target)
    out = {}
    for path, name in pairs.items():
        array = _as_numpy(flat[path])
        rule = _rule(path[-1], array.ndim)
        array = np.array(rule.to_torch(array) if rule else array, copy=True)  # writable, contiguous
        out[name] = torch.as_tensor(array, dtype=target[name].dtype)
    return out


# -- the canonical form (checkpoints): canonical keys, torch layouts, numpy arrays ------------
def torch_to_canonical(state_dict: dict) -> dict[str, np.ndarray]:
    """`blocks.0.q.weight` -> `blocks_0/q/weight`, arrays as they are (torch layout)."""
    return {torch_key(name): _as_numpy(t).copy() for name, t in state_dict.items()}


def flax_to_canonical(flax_params: dict) -> dict[str, np.ndarray]:
    """Flax params -> canonical keys with torch layouts, without torch (the RULES decide)."""
    params, _ = _unwrap(flax_params)
    out = {}
    for path, value in _flatten(params).items():
        array = _as_numpy(value)
        rule = _rule(path[-1], array.ndim)
        out[flax_key(path)] = np.ascontiguousarray(rule.to_torch(array) if rule else array)
    return out


def canonical_to_torch(canonical: dict[str, np.ndarray], module_or_state_dict) -> dict:
    """A torch state_dict for the target from canonical arrays; every mismatch in one ConversionError."""
    import torch

    target = module_or_state_dict.state_dict() if hasattr(module_or_state_dict, "state_dict") else module_or_state_dict
    left, out, problems = dict(canonical), {}, []
    for name, t in target.items():
        array = left.pop(torch_key(name), None)
        if array is None:
            problems.append(f"torch {name} {tuple(t.shape)}: not in the checkpoint")
        elif tuple(array.shape) != tuple(t.shape):
            problems.append(f"{name}: checkpoint {tuple(array.shape)}, model {tuple(t.shape)}")
        else:
            out[name] = torch.as_tensor(np.array(array, copy=True), dtype=t.dtype)
    problems += [f"checkpoint {key} {tuple(a.shape)}: no torch parameter" for key, a in left.items()]
    if problems:
        raise ConversionError(f"{len(problems)} parameter(s) do not match:\n  " + "\n  ".join(problems))
    return out


def canonical_to_flax(canonical: dict[str, np.ndarray], flax_params: dict) -> dict:
    """Flax params shaped like `flax_params` from canonical arrays (canonical keys have no '.',
    so they are their own torch_key and torch_to_flax matches them directly)."""
    return torch_to_flax(canonical, flax_params)
