"""The precision flags in force during a step, and the error of a conv and a linear layer, forward
and backward, against float64, under each precision policy (torch_adapter.precision.Policy: the harness's
own path, the flags set by Policy.step around forward and backward alike)."""

from __future__ import annotations

import copy

from bench.doctor.result import Result, precisions

# Relative L2 error against float64 a precision must stay under, and (for reduced precision) exceed:
# an fp32 result above FP32_MAX means TF32 (or worse) was on; a tf32/bf16 result under its floor
# means the reduced precision was not applied. TF32 and bf16 keep 10 and 7 mantissa bits (input
# rounding ~2.4e-4 and ~2e-3 relative); float32 errors are ~1e-6 (up to ~1e-5 with cuDNN's FFT and
# Winograd convolutions, which cudnn.benchmark may pick).
FP32_MAX = 1e-4
BOUNDS = {"fp32": (0.0, FP32_MAX), "tf32": (FP32_MAX, 5e-3), "bf16": (5e-4, 3e-2)}


def _policy(precision: str, device):
    from bench.backends.torch_adapter.precision import Policy

    return Policy.make(precision, "auto", "contiguous", device)


def check_flags(device) -> Result:
    """Each policy's flags inside a step, starting from the opposite global state, and restored after."""
    from bench.backends.torch_adapter.precision import backend_flags, read_flags

    rows, ok = {}, True
    for precision in precisions(device):
        want = {"matmul_tf32": precision == "tf32", "cudnn_tf32": precision == "tf32",
                "cudnn_benchmark": device.type == "cuda"}
        policy = _policy(precision, device)
        with backend_flags(not want["matmul_tf32"], not want["cudnn_benchmark"]):
            before = read_flags()
            with policy.step():
                inside = read_flags()
            restored = read_flags() == before
        rows[precision] = {"inside_step": inside, "restored": restored, "recorded": policy.describe()["backend_flags"]}
        ok &= inside == want and restored and rows[precision]["recorded"] == inside
    summary = "; ".join(f"{p}: matmul TF32 {'on' if r['inside_step']['matmul_tf32'] else 'off'}, cuDNN TF32 "
                        f"{'on' if r['inside_step']['cudnn_tf32'] else 'off'}" for p, r in rows.items())
    return Result("precision flags", ok, summary + ("" if ok else " (NOT as the policy says)"), rows)


def _layers(device):
    import torch

    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).double()
    linear = torch.nn.Linear(1024, 1024).double()
    for layer in (conv, linear):
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / p.shape[-1] ** 0.5)
    return {"conv3x3": (conv, torch.randn(8, 64, 32, 32, generator=gen, dtype=torch.float64)),
            "linear": (linear, torch.randn(256, 1024, generator=gen, dtype=torch.float64))}


def _forward_backward(layer, x, grad_out, policy=None):
    """(output, input grad, weight grad); under `policy`: the forward in Policy.call, both in Policy.step."""
    import contextlib

    x = x.clone().requires_grad_(True)
    step = policy.step() if policy else contextlib.nullcontext()
    with step:
        with policy.call() if policy else contextlib.nullcontext():
            y = layer(x)
        (y.to(grad_out.dtype) * grad_out).sum().backward()
    return y.detach(), x.grad.detach(), layer.weight.grad.detach()


def layer_errors(device, precision: str) -> dict:
    """name -> {"forward", "grad_input", "grad_weight"}: relative L2 error against float64."""
    import torch

    out = {}
    for name, (layer64, x64) in _layers(device).items():
        g64 = torch.randn(layer64(x64).shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        ref = _forward_backward(layer64, x64, g64)
        layer = copy.deepcopy(layer64).float().to(device)
        got = _forward_backward(layer, x64.float().to(device), g64.float().to(device), _policy(precision, device))
        out[name] = {k: float(torch.linalg.vector_norm(a.double().cpu() - r) / torch.linalg.vector_norm(r))
                     for k, a, r in zip(("forward", "grad_input", "grad_weight"), got, ref)}
    return out


def check_layer_errors(device) -> Result:
    rows, ok, parts = {}, True, []
    for precision in precisions(device):
        errors = layer_errors(device, precision)
        values = [v for layer in errors.values() for v in layer.values()]
        lo, hi = BOUNDS[precision]
        within = lo < min(values) and max(values) < hi if precision != "fp32" else max(values) < hi
        rows[precision] = {"errors": errors, "bounds": [lo, hi], "ok": within}
        ok &= within
        parts.append(f"{precision} {min(values):.1e}..{max(values):.1e}" + ("" if within else " OUT OF BOUNDS"))
    return Result("conv+linear fwd/bwd error vs float64", ok, ", ".join(parts), rows)
