"""Progressive training of nested models (Matryoshka Diffusion, Gu et al. 2024, Sec. 3.3): a nest's
inner U-Net starts from the weights of a trained smaller model, then the nest trains jointly.

Weights file: an `.npz` of the model's parameters under their torch names, in torch layouts,
written from either backend (the Flax side goes through bench/convert.py). Until the training
issue's checkpoint format lands, this is the format; `load_inner` is the one place to adapt.

A model whose class nests its next level as the submodule `inner` (NestedUNet) can take the
weights of the model built from its `levels[depth:]` at depth `depth`: the names match after
the `inner.` prefix, by construction.
"""

from __future__ import annotations

import numpy as np

from bench import convert


def torch_layout_weights(built) -> dict[str, np.ndarray]:
    """{torch name: numpy array in torch layout} of a built model of either backend."""
    if built.backend == "torch":
        return {k: v.detach().cpu().numpy() for k, v in built.model.state_dict().items()}
    from bench.backends import torch_backend

    target = torch_backend.build(built.entry, built.config, abstract=True).model.state_dict()  # names, shapes
    return {k: v.numpy() for k, v in convert.flax_to_torch(built.params, target).items()}


def save_weights(built, path: str) -> None:
    np.savez(path, **torch_layout_weights(built))


def load_weights(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def load_inner(built, weights: dict[str, np.ndarray], depth: int = 1):
    """Set the level-`depth` inner model of `built` (a nest) from `weights` (torch names/layouts)
    of a model built from the nest's levels[depth:]; every name and shape must match. Returns
    `built` (jax: with new params)."""
    prefix = "inner." * depth
    if built.backend == "torch":
        import torch

        module = built.model
        for _ in range(depth):
            module = module.inner
        state = module.state_dict()
        missing = sorted(set(state) ^ set(weights))
        if missing:
            raise convert.ConversionError(f"{len(missing)} parameter(s) of {prefix}* do not match: {missing[:8]}")
        with torch.no_grad():
            for name, tensor in state.items():
                tensor.copy_(torch.as_tensor(weights[name], dtype=tensor.dtype))
        return built
    params = built.params["params"]
    path = ["inner"] * depth
    node = params
    for key in path:
        node = node[key]
    new_inner = convert.torch_to_flax(weights, node)
    built.params = {**built.params, "params": _replace(params, path, new_inner)}
    return built


def _replace(tree: dict, path: list[str], value) -> dict:
    if not path:
        return value
    return {**tree, path[0]: _replace(tree[path[0]], path[1:], value)}
