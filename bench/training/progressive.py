"""Progressive training of nested models (Matryoshka Diffusion, Gu et al. 2024, Sec. 3.3): a nest's
inner U-Net starts from a diffbench checkpoint (docs/training.md) of a trained smaller model,
written by either backend; then the nest trains jointly (nothing frozen).

A model whose class nests its next level as the submodule `inner` (NestedUNet) takes, at depth
`depth`, the weights of the model built from its `levels[depth:]`: the canonical keys match
after the `inner/` prefix, by construction.
"""

from __future__ import annotations

import dataclasses

from bench import convert
from bench.training import checkpoint


def write_checkpoint(built, path, preset: str = "", step: int = 0):
    """A checkpoint of `built` (either backend) in the training format, e.g. of the small model."""
    adapter = _adapter(built)
    meta = {"arch": built.entry.name, "preset": preset, "overrides": {}, "backend": built.backend, "step": step,
            "config": dataclasses.asdict(built.config)}
    return checkpoint.write(path, adapter.export_weights(built), meta)


def load_inner(built, path, depth: int = 1):
    """Set the level-`depth` inner U-Net of the nest `built` from the checkpoint at `path`. The
    checkpoint must be of the same architecture with levels equal to the nest's levels[depth:]; every
    parameter must match by name and shape (one error lists all mismatches). Returns `built`."""
    shapes = {k: v.shape for k, v in _inner_weights(built, depth).items()}
    meta = checkpoint.read_meta(path)
    checkpoint.check_compatible(checkpoint.Checkpoint(path, meta, {}, None), built.entry.name)
    want = [dataclasses.asdict(lv) for lv in built.config.levels[depth:]]
    got = meta.get("config", {}).get("levels")
    if got is not None and _jsonish(got) != _jsonish(want):
        raise checkpoint.CheckpointError(f"{path}: its levels {got} are not this nest's levels[{depth}:] {want}")
    ckpt = checkpoint.read(path, expect=shapes)  # every array's shape checked before it is read
    return set_inner(built, ckpt.weights, depth)


def set_inner(built, weights: dict, depth: int = 1):
    """Set the level-`depth` inner U-Net of the nest `built` to `weights` (canonical keys: the
    export_weights of the model built from its levels[depth:]). Returns `built`."""
    if built.backend == "torch":
        module = built.model
        for _ in range(depth):
            module = module.inner
        module.load_state_dict(convert.canonical_to_torch(weights, module))
        return built
    params, keys = built.params["params"], ["inner"] * depth
    node = _node(params, keys)
    built.params = {**built.params, "params": _replace(params, keys, convert.canonical_to_flax(weights, node))}
    return built


def _inner_weights(built, depth: int) -> dict:
    """The canonical weights of the nest's level-`depth` inner U-Net."""
    if built.backend == "torch":
        module = built.model
        for _ in range(depth):
            module = module.inner
        return convert.torch_to_canonical(module.state_dict())
    return convert.flax_to_canonical(_node(built.params["params"], ["inner"] * depth))


def _node(tree: dict, path: list[str]):
    for key in path:
        tree = tree[key]
    return tree


def start_from(built, path, arch: str):
    """A `train.init` checkpoint into `built`: the whole model when the checkpoint's config has the
    model's levels (or the model does not nest), else, as ml-mdm's
    `initialize_inner_with_pretrained`, the inner U-Net at the depth whose levels[depth:] the
    checkpoint's levels equal (a smaller model of the nest). Returns (checkpoint, depth)."""
    meta = checkpoint.read_meta(path)
    checkpoint.check_compatible(checkpoint.Checkpoint(path, meta, {}, None), arch)
    depth = inner_depth(built, checkpoint.Checkpoint(path, meta, {}, None))
    if depth:
        load_inner(built, path, depth)
        return checkpoint.Checkpoint(path, meta, {}, None), depth
    adapter = _adapter(built)
    shapes = {k: v.shape for k, v in adapter.export_weights(built).items()}  # checked before reading
    ckpt = checkpoint.read(path, expect=shapes, arch=arch)
    adapter.load_weights(built, ckpt.weights)
    return ckpt, depth


def inner_depth(built, ckpt) -> int:
    """0: the checkpoint is of this model; d >= 1: of the model built from levels[d:]."""
    levels = getattr(built.config, "levels", None)
    got = ckpt.meta.get("config", {}).get("levels")
    if levels is None or got is None:
        return 0
    want = [_jsonish(dataclasses.asdict(lv)) for lv in levels]
    for depth in range(len(want)):
        if _jsonish(got) == want[depth:]:
            return depth
    raise checkpoint.CheckpointError(f"{ckpt.path}: its levels {got} are neither this nest's levels {want} nor "
                                     "those of a smaller model of it (levels[d:], the inner U-Net at depth d)")


def _jsonish(value):
    """Tuples as lists (meta.json round trip)."""
    if isinstance(value, (list, tuple)):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    return value


def _replace(tree: dict, path: list[str], value) -> dict:
    if not path:
        return value
    return {**tree, path[0]: _replace(tree[path[0]], path[1:], value)}


def _adapter(built):
    from bench import backends

    return backends.get(built.backend)
