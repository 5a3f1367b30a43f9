"""Exact MAC count of a traced JAX function from its jaxpr (no compilation, no execution).

Counts dot_general (matmuls, einsums, attention QK^T and AV) and conv_general_dilated (all
kernel taps, padded ones included, as the analytic count does) — diffbench's convention, so it
is the conventions-aligned JAX cross-check. Sub-jaxprs (pjit, custom_jvp/vjp, remat) are walked;
a scan body counts `length` times; a while loop has no static trip count and raises.
"""

from __future__ import annotations

import math
from collections import Counter


def dot_general_macs(eqn) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    out = eqn.outvars[0].aval.shape
    return math.prod(out) * math.prod(lhs[d] for d in lhs_contract)


def conv_macs(eqn) -> int:
    """Every output element sums over in-features-per-group x kernel taps. An input dilated by
    d (the input gradient of a stride-d conv, a transposed conv) holds d-1 inserted zeros per
    element: only 1 / prod(d) of those taps are work, as FlopCounterMode counts them too."""
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, *spatial)
    rhs = eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    holes = math.prod(eqn.params.get("lhs_dilation") or (1,))
    return math.prod(out) * rhs[rhs_spec[1]] * math.prod(rhs[d] for d in rhs_spec[2:]) // holes


_COUNTERS = {"dot_general": dot_general_macs, "conv_general_dilated": conv_macs}


def _sub_jaxprs(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value, "consts"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _sub_jaxprs(item)


def jaxpr_macs(jaxpr, counts: Counter | None = None, scale: int = 1) -> Counter:
    """MACs keyed by primitive name ("dot_general", "conv_general_dilated")."""
    counts = Counter() if counts is None else counts
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in _COUNTERS:
            counts[name] += scale * _COUNTERS[name](eqn)
            continue
        if name == "while":
            raise NotImplementedError("jaxpr count: a while loop has no static trip count")
        inner = scale * eqn.params.get("length", 1) if name == "scan" else scale
        branches = eqn.params.get("branches") if name == "cond" else None
        if branches:  # a cond runs one branch: count the most expensive
            worst = max((jaxpr_macs(b.jaxpr, None, inner) for b in branches), key=lambda c: sum(c.values()))
            counts.update(worst)
            continue
        for value in eqn.params.values():
            for sub in _sub_jaxprs(value):
                jaxpr_macs(sub, counts, inner)
    return counts


def count_fn(fn, *args) -> dict[str, int]:
    """MACs of fn(*args); args may be jax.ShapeDtypeStruct pytrees."""
    import jax

    closed = jax.make_jaxpr(fn)(*args)
    return dict(jaxpr_macs(closed.jaxpr))
