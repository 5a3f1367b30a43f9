"""Torch forward count through fvcore, in its own process:
`python -m bench.measure.fvcore_count '<job json>'` prints one JSON object.

fvcore counts 1 per multiply-accumulate (MAC). Aligned to diffbench's convention: handles are
registered for what our models use and fvcore skips (scaled_dot_product_attention), einsum is
counted exactly (fvcore's own handle parses a 4-significant-digit float), and the norm,
upsample and pooling handles are removed (the analytic count excludes them).
"""

from __future__ import annotations

import math
from collections import OrderedDict

FVCORE_EXCLUDED = ("aten::batch_norm", "aten::group_norm", "aten::layer_norm", "aten::instance_norm",
                   "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::adaptive_avg_pool2d",
                   "aten::grid_sampler")


def _shape(value) -> list[int]:
    from fvcore.nn.jit_handles import get_shape

    shape = get_shape(value)
    if shape is None:
        raise ValueError(f"fvcore handle: incomplete tensor shape for {value}")
    return list(shape)


def sdpa_macs(inputs, outputs) -> int:
    """QK^T and AV of aten::scaled_dot_product_attention(q, k, v, ...): (..., L, E) x (..., S, E)
    and (..., L, S) x (..., S, Ev): prod(q.shape[:-1]) * S * (E + Ev)."""
    q, k, v = (_shape(inputs[i]) for i in range(3))
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def einsum_macs(inputs, outputs) -> int:
    """Exact MACs of a two-operand einsum: the product of the sizes of all distinct letters."""
    from fvcore.nn.jit_handles import einsum_flop_jit

    equation = inputs[0].toIValue().replace(" ", "")
    operands = [_shape(v) for v in inputs[1].node().inputs()]
    if len(operands) != 2:
        return einsum_flop_jit(inputs, outputs)
    sizes = OrderedDict()
    for letters, shape in zip(equation.split("->")[0].split(","), operands):
        sizes.update(zip(letters, shape))
    return math.prod(sizes.values())


def fvcore_macs(model, inputs: tuple) -> dict:
    """MACs of model(*inputs) by operator, plus the ops fvcore saw and did not count."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**{name: None for name in FVCORE_EXCLUDED})
    analysis.set_op_handle(**{"aten::scaled_dot_product_attention": sdpa_macs, "aten::einsum": einsum_macs})
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    by_op = {k: int(v) for k, v in analysis.by_operator().items()}
    return {"macs": int(sum(by_op.values())), "by_operator": by_op, "skipped": dict(analysis.unsupported_ops())}
