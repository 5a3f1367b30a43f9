"""The CUDA paths, where a CUDA device exists. On a CPU-only machine (CI) every test here is
skipped with the reason shown by `pytest -ra`; on a GPU machine they run the real thing: CUDA
events next to wall clock, CUDA graphs, mixed precision, TF32, flash attention, MFU from the peak
table, and jax on the GPU."""

from __future__ import annotations

import pytest
import torch

from bench.cases import Case
from bench.measure import run_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device on this machine: CUDA-path tests run on a GPU machine")


def _case(**kw):
    base = dict(id="cuda", index=0, arch="unet2d", preset="unet2d-tiny", overrides={}, backend="torch",
                device="cuda", batch=4, measure=("sample_step", "train_step"), threads=1, timeout_s=600.0)
    return Case(**{**base, **kw})


def test_bf16_sample_and_train_steps_with_events_and_mfu():
    rec = run_case(_case(precision="bf16"))
    for name in ("sample_step", "train_step"):
        t = rec["timing"][name]
        assert t["precision"]["precision"] == "bf16"
        events = t["device_time"]
        assert events["median_ms"] > 0 and events["median_ms"] <= t["median_ms"] * 1.5
        u = t["utilization"]
        assert u["achieved_gflops_per_s"] > 0
        name_ = t["device"]["name"]
        if any(k in name_ for k in ("H100", "H200", "A100")):
            assert 0 < u["mfu"] < 1, u


def test_cuda_graphs_replay_the_sampling_step():
    rec = run_case(_case(measure=("sample_step",), cuda_graphs=True))
    t = rec["timing"]["sample_step"]
    assert t["cuda_graphs"] is True and t["median_ms"] > 0


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
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("jax sees no GPU (CPU-only jaxlib)")
    rec = run_case(_case(backend="jax", precision="bf16"))
    assert rec["timing"]["train_step"]["utilization"]["achieved_gflops_per_s"] > 0


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
