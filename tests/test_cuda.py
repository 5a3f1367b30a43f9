"""The CUDA paths, where a CUDA device exists. On a CPU-only machine (CI) every test here is
skipped with the reason shown by `pytest -ra`; on a GPU machine they run the real thing: CUDA
events next to wall clock, CUDA graphs, mixed precision, TF32, flash attention, MFU from the peak
table, and jax on the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from architectures import registry
from bench.backends import framework_free
from bench.backends import torch_adapter as tb
from bench.case import Case
from bench.measure import run_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine: CUDA-path tests run on a GPU machine")


def _case(**kw):
    base = dict(id="cuda", index=0, arch="unet2d", preset="unet2d-tiny", overrides={}, backend="torch",
                device="cuda", batch=4, measure=("sample_step", "train_step"), threads=1, timeout_s=600.0)
    return Case(**{**base, **kw})


def _forward(precision: str):
    """unet2d-tiny's network output on the GPU under `precision`, on the same perturbed weights
    (its zero-initialized output layer would make every output 0) and the same inputs."""
    entry = registry.get("unet2d")
    config = entry.preset("unet2d-tiny").config
    built = tb.build(entry, config, seed=0, device=torch.device("cuda"), precision=precision)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in built.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen).to(p.device, p.dtype))
    built.model.eval()
    a = tb.device_arrays(built, framework_free.random_inputs(config.input_shapes(4), seed=3,
                                                             num_classes=config.num_classes))
    with torch.no_grad():
        pred, _ = tb.denoiser(built, built.model, a.get("context"))(a["x"], a["t"], a.get("y"), a.get("latents"))
    return tb.to_numpy(pred)


def test_bf16_sample_and_train_steps_with_events_and_mfu():
    ref, low = _forward("fp32"), _forward("bf16")
    err = float(np.linalg.norm(low - ref) / np.linalg.norm(ref))
    assert 0 < err < 3e-2, err  # > 0: bf16 really ran (identical outputs would mean float32 did)
    rec = run_case(_case(precision="bf16"))
    for name in ("sample_step", "train_step"):
        t = rec["timing"][name]
        events = t["device_time"]
        assert events["median_ms"] > 0 and events["median_ms"] <= t["median_ms"] * 1.5
        u = t["utilization"]
        assert u["achieved_gflop_per_s"] > 0
        name_ = t["device"]["name"]
        if any(k in name_ for k in ("H100", "H200", "A100")):
            assert 0 < u["mfu"] < 1, u


def test_cuda_graphs_replay_the_sampling_step():
    """The replayed graph computes what the eager step computes, on inputs written after capture
    (a replay of stale work, or no replay at all, returns the capture-time output)."""
    entry = registry.get("unet2d")
    built = tb.build(entry, entry.preset("unet2d-tiny").config, seed=0, device=torch.device("cuda"))
    eager = tb.make_sample_step(built, 4, seed=0)
    graphed = tb.make_sample_step(built, 4, seed=0, cuda_graphs=True)
    gen = torch.Generator().manual_seed(5)
    for _ in range(2):
        x = torch.randn(eager.inputs["x"].shape, generator=gen).to("cuda")
        eager.inputs["x"].copy_(x)
        graphed.inputs["x"].copy_(x)
        want, got = eager.fn()[0].clone(), graphed.fn()[0].clone()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    rec = run_case(_case(measure=("sample_step",), cuda_graphs=True))
    assert rec["timing"]["sample_step"]["median_ms"] > 0


def test_tf32_with_efficient_attention_and_bf16_with_flash():
    """The flash kernel takes fp16/bf16 only (tf32 + flash is refused at load); TF32 runs with the
    memory-efficient kernel, and the record says TF32 was on for the step."""
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 and flash attention need compute capability >= 8.0")
    rec = run_case(_case(precision="tf32", attention="efficient", measure=("sample_step", "train_step")))
    for name in ("sample_step", "train_step"):
        t = rec["timing"][name]["precision"]
        assert t["precision"] == "tf32" and t["backend_flags"]["matmul_tf32"] and t["backend_flags"]["cudnn_tf32"]
        assert t["backend_flags"]["cudnn_benchmark"] is True  # on by default for CUDA
    rec = run_case(_case(precision="bf16", attention="flash", measure=("sample_step",)))
    assert rec["timing"]["sample_step"]["precision"]["attention"] == "flash"


def test_jax_on_the_gpu_in_bf16():
    import jax

    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("jax sees no GPU (CPU-only jaxlib)")
    rec = run_case(_case(backend="jax", precision="bf16"))
    assert rec["timing"]["train_step"]["utilization"]["achieved_gflop_per_s"] > 0


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_conv_and_linear_error_against_float64(precision):
    """Forward and backward under the policy's whole-step flags: fp32 stays at float32 error (cuDNN's
    default TF32 for convs is off, in the backward too); tf32 shows TF32's error, in both passes."""
    from bench.doctor import numerics

    if precision == "tf32" and torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 needs compute capability >= 8.0")
    lo, hi = numerics.BOUNDS[precision]
    for layer, errors in numerics.layer_errors(torch.device("cuda"), precision).items():
        for what, err in errors.items():
            assert (precision == "fp32" or lo < err) and err < hi, (layer, what, err)
