"""Torch forward count through fvcore, in its own process:
`python -m bench.measure.fvcore_count '<job json>'` prints one JSON object.

fvcore counts 1 per multiply-accumulate (MAC). Aligned to diffbench's convention: handles are
registered for what our models use and fvcore skips (scaled_dot_product_attention), einsum is
counted exactly (fvcore's own handle parses a 4-significant-digit float), and the norm,
upsample and pooling handles are removed (the analytic count excludes them).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict

METHOD = "fvcore.nn.FlopCountAnalysis (jit trace, CPU) + diffbench handles"
MAX_GMACS = 20.0  # fvcore runs the model: above this per traced batch, the count is skipped

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


def _excluded(inputs, outputs) -> Counter:
    """Counts nothing (set_op_handle(name, None) does not remove a built-in handle)."""
    return Counter()


def fvcore_macs(model, inputs: tuple) -> dict:
    """MACs of model(*inputs) by operator, plus the ops fvcore saw and did not count."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle(**{name: _excluded for name in FVCORE_EXCLUDED})
    analysis.set_op_handle(**{"aten::scaled_dot_product_attention": sdpa_macs, "aten::einsum": einsum_macs})
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    by_op = {k: int(v) for k, v in analysis.by_operator().items()}
    return {"macs": int(sum(by_op.values())), "by_operator": by_op, "skipped": dict(analysis.unsupported_ops())}


class _Forward:
    """torch.nn.Module wrapper: jit tracing needs a module whose inputs are all tensors."""

    def __new__(cls, model, denoise, names):
        import torch

        class Forward(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model, self.names = model, names  # the model as a submodule: its weights are parameters

            def forward(self, *tensors):
                a = dict(zip(self.names, tensors))
                return denoise(a["x"], a["t"], a.get("y"), a.get("latents"))

        return Forward()


def _traced_batch(entry, config, batch: int) -> int:
    """The batch to trace at: the job's, or 1 (and scale) when that is too big to run."""
    per_image = sum(entry.load_flops()(config, 1).values()) / 1e9
    if per_image * batch <= MAX_GMACS:
        return batch
    if per_image <= MAX_GMACS:
        return 1
    raise RuntimeError(f"skipped: fvcore runs the model and one image is {per_image:.1f} GMACs "
                       f"(> {MAX_GMACS}); see the FlopCounterMode and analytic counts")


def count(job) -> dict:
    import fvcore
    import torch

    from bench.backends import torch_adapter as tb
    from bench.measure.count_job import resolve

    entry, config = resolve(job)
    traced = _traced_batch(entry, config, job.batch)
    built = tb.build(entry, config, seed=job.seed, device="cpu")
    built.model.eval()
    a = {k: v for k, v in tb.make_inputs(built, traced, job.seed).items() if v is not None}
    module = _Forward(built.model, tb.denoiser(built, built.model, a.get("context")), tuple(a))
    with torch.no_grad():
        counted = fvcore_macs(module, tuple(a.values()))
    scale = job.batch // traced
    macs = counted["macs"] * scale
    return {"method": METHOD, "version": f"fvcore {getattr(fvcore, '__version__', '?')}", "batch": job.batch,
            "traced_batch": traced, "forward": {"flops": 2 * macs, "macs": macs,
            "by_operator": {k: v * scale for k, v in counted["by_operator"].items()}},
            "skipped_ops": counted["skipped"], "excluded_ops": list(FVCORE_EXCLUDED)}


if __name__ == "__main__":
    from bench.measure.count_job import child_main

    child_main(count)
