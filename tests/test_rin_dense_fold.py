"""Every RIN (Flax) projection folds tokens into rows before its matmul (architectures/row_dense.py).

XLA:CPU runs the weight gradient of a Dense on (batch, tokens, dim) at a fraction of the speed of
the same product on (batch * tokens, dim) rows (docs/backend-speed.md). Checked on the traced
program, not by timing: in the forward pass and in the gradient, no dot_general multiplies a
rank >= 3 activation by a 2-D kernel, and there are at least as many 2-D matmuls as 2-D kernels
(forward) or twice as many (gradient: each kernel also gets its weight gradient).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from architectures.rin import rin_flax
from architectures.rin.config import PRESETS

TINY = PRESETS["rin-tiny"].config


def dot_ranks(jaxpr) -> list[tuple[int, int]]:
    """(lhs rank, rhs rank) of every dot_general in a jaxpr, sub-jaxprs (jit, remat, custom_vjp) included."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append(tuple(v.aval.ndim for v in eqn.invars[:2]))
        for param in eqn.params.values():
            for item in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(item, "jaxpr", item)
                if hasattr(inner, "eqns"):
                    out.extend(dot_ranks(inner))
    return out


def traced(grad: bool):
    model = rin_flax.RIN(TINY)
    args = {k: jax.ShapeDtypeStruct(s, jnp.dtype(d)) for k, (s, d) in TINY.input_shapes(2).items()}
    params = jax.eval_shape(lambda a: model.init(jax.random.PRNGKey(0), **a), args)

    def forward(p, a):
        pred, latents = model.apply(p, **a)
        return jnp.sum(pred) + jnp.sum(latents)

    fn = jax.grad(forward) if grad else forward
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
               if getattr(path[-1], "key", None) == "kernel" and leaf.ndim == 2]
    return dot_ranks(jax.make_jaxpr(fn)(params, args).jaxpr), len(kernels)


@pytest.mark.parametrize("grad", [False, True], ids=["forward", "gradient"])
def test_rin_flax_dense_layers_are_folded(grad):
    ranks, kernels = traced(grad)
    mixed = [r for r in ranks if 2 in r and max(r) > 2]
    assert not mixed, f"{len(mixed)} dot_generals multiply a rank>2 activation by a 2-D kernel: {mixed[:4]}"
    folded = sum(r == (2, 2) for r in ranks)
    assert folded >= kernels * (2 if grad else 1), f"{folded} 2-D matmuls for {kernels} Dense kernels"
