"""A Flax Dense that folds leading axes into rows before its matmul.

nn.Dense on a (batch, tokens, dim) input contracts a 3-D array with the kernel; XLA:CPU runs the
weight gradient of that dot (contracting over batch and tokens) at roughly half the speed of the
same product on a (batch * tokens, dim) matrix. RowDense reshapes to 2-D, calls nn.Dense and
reshapes back: the same parameters (`kernel`, `bias`) under the same names and shapes, so converted
weights and checkpoints load unchanged. Measured in benchmarks/backend_speed.py.
"""

from __future__ import annotations

import flax.linen as nn


class RowDense(nn.Dense):
    """nn.Dense applied to x.reshape(-1, x.shape[-1]); same parameter layout as nn.Dense."""

    @nn.compact
    def __call__(self, inputs):
        if inputs.ndim <= 2:
            return super().__call__(inputs)
        lead = inputs.shape[:-1]
        out = super().__call__(inputs.reshape(-1, inputs.shape[-1]))
        return out.reshape(*lead, out.shape[-1])
