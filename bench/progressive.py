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
    if built.backend == "torch":
        module = built.model
        for _ in range(depth):
            module = module.inner
        shapes = {k: v.shape for k, v in convert.torch_to_canonical(module.state_dict()).items()}
    else:
        params, keys = built.params["params"], ["inner"] * depth
        node = params
        for key in keys:
            node = node[key]
        shapes = {k: v.shape for k, v in convert.flax_to_canonical(node).items()}
    meta = checkpoint.read_meta(path)
    checkpoint.check_compatible(checkpoint.Checkpoint(path, meta, {}, None), built.entry.name)
    want = [dataclasses.asdict(lv) for lv in built.config.levels[depth:]]
    got = meta.get("config", {}).get("levels")
    if got is not None and _jsonish(got) != _jsonish(want):
        raise checkpoint.CheckpointError(f"{path}: its levels {got} are not this nest's levels[{depth}:] {want}")
    ckpt = checkpoint.read(path, expect=shapes)  # every array's shape checked before it is read
    if built.backend == "torch":
        module.load_state_dict(convert.canonical_to_torch(ckpt.weights, module))
        return built
    built.params = {**built.params, "params": _replace(params, keys, convert.canonical_to_flax(ckpt.weights, node))}
    return built


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
