"""Precision policies (docs/precision.md): reduced-precision outputs against the float32 reference
on the same weights, torch against jax under the same policy, fp16 training with a loss scaler,
and the settings that cannot run rejected with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import jax
import jax.numpy as jnp

from architectures import registry
from bench import convert, suite_file
from bench.backends import framework_free
from bench.backends import jax_adapter as jb
from bench.backends import torch_adapter as tb
from bench.backends.framework_free import DeviceError
from bench.backends.jax_adapter.precision import SCALE_INTERVAL, Policy as JaxPolicy

# Relative L2 error of a network output against float32 on the same weights and inputs
# (measured on the tiny presets: bf16 1.2-1.9%, fp16 0.12-0.16%: docs/precision.md; bounds leave headroom).
TOLERANCE = {"bf16": 3e-2, "bf16-pure": 5e-2, "fp16": 1e-2, "fp32": 1e-6}
PRESETS = [("unet2d", "unet2d-tiny"), ("rin", "rin-tiny")]
BATCH = 2


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


@pytest.fixture(scope="module")
def weights():
    """Per preset: perturbed torch weights (zero-init layers would make the test trivial) and inputs."""
    out = {}
    for arch, preset in PRESETS:
        entry = registry.get(arch)
        config = entry.preset(preset).config
        built = tb.build(entry, config, seed=0)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in built.model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        arrays = framework_free.random_inputs(config.input_shapes(BATCH), seed=3, num_classes=config.num_classes)
        out[arch] = (entry, config, {k: v.detach().clone() for k, v in built.model.state_dict().items()}, arrays)
    return out


def _torch_out(entry, config, state, arrays, precision):
    built = tb.build(entry, config, seed=0, precision=precision)
    built.model.load_state_dict({k: v.to(next(built.model.parameters()).dtype) if v.is_floating_point() else v
                                 for k, v in state.items()})
    built.model.eval()
    a = tb.device_arrays(built, arrays)
    with torch.no_grad():
        pred, _ = tb.denoiser(built, built.model, a.get("context"))(a["x"], a["t"], a.get("y"), a.get("latents"))
    assert pred.dtype == torch.float32  # the process always gets float32
    return tb.to_numpy(pred)


def _jax_out(entry, config, state, arrays, precision):
    built = jb.build(entry, config, seed=0, abstract=True, precision=precision)
    variables = built.policy.prepare(convert.torch_to_flax(state, built.params))
    a = jb.device_arrays(built, arrays)

    def forward(variables, a):
        return jb.denoiser(built, variables, a.get("context"))(a["x"], a["t"], a.get("y"), a.get("latents"))[0]

    with built.policy.tracing():
        pred = jax.jit(forward)(variables, a)
    assert pred.dtype == jnp.float32
    return np.asarray(pred)


@pytest.mark.parametrize("precision", ["bf16", "bf16-pure", "fp16"])
@pytest.mark.parametrize("arch", [a for a, _ in PRESETS])
def test_reduced_precision_tracks_fp32_in_both_backends(weights, arch, precision):
    entry, config, state, arrays = weights[arch]
    ref_t = _torch_out(entry, config, state, arrays, "fp32")
    ref_j = _jax_out(entry, config, state, arrays, "fp32")
    assert _rel(ref_j, ref_t) < 1e-5  # the fp32 policy is the parity-tested float32 path
    low_t = _torch_out(entry, config, state, arrays, precision)
    err_t = _rel(low_t, ref_t)
    assert 0 < err_t < TOLERANCE[precision], (precision, err_t)  # > 0: the policy really changed the compute
    if precision == "fp16":  # XLA:CPU has no fp16 matmul with fp32 accumulation: a clear refusal
        with pytest.raises(DeviceError, match="fp16.*not supported on CPU"):
            _jax_out(entry, config, state, arrays, precision)
        return
    low_j = _jax_out(entry, config, state, arrays, precision)
    err_j = _rel(low_j, ref_j)
    assert 0 < err_j < TOLERANCE[precision], (precision, err_j)
    assert _rel(low_j, low_t) < 2 * TOLERANCE[precision]  # torch vs jax under the same policy


def test_fp16_training_keeps_a_finite_loss_with_the_scaler():
    entry = registry.get("unet2d")
    built = tb.build(entry, entry.preset("unet2d-tiny").config, seed=0, precision="fp16")
    step = tb.make_train_step(built, 2, seed=0)
    losses = [float(tb.sync(step.fn())) for _ in range(4)]
    assert all(np.isfinite(losses)), losses
    assert built.policy.describe()["loss_scale"] == built.policy.scaler.get_scale()  # the scaler that ran


def test_torch_fp16_scaler_skips_an_overflowing_step_and_halves_the_scale():
    """The fp16 update goes through the loss scaler: inf gradients leave the weights as they were
    and halve the scale; finite ones update the weights (a plain backward + step would apply inf)."""
    policy = tb.Policy.make("fp16", "auto", "contiguous", torch.device("cpu"))
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    policy.backward_and_step(model(torch.ones(1, 4)).sum() * float("inf"), opt)
    first = policy.describe()["loss_scale"]
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    opt.zero_grad()
    policy.backward_and_step(model(torch.ones(1, 4)).sum(), opt)
    assert policy.describe()["loss_scale"] == first and not all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert first == torch.amp.GradScaler("cpu").get_scale() / 2


def test_jax_bf16_training_step_runs_in_bf16():
    """Finite losses that differ from the float32 steps' on the same weights and batches by a
    bf16-sized amount (identical losses would mean the policy was not applied). The first loss is
    the same in both: the zero-initialized output layer predicts 0 until the first update."""
    entry = registry.get("unet2d")
    config = entry.preset("unet2d-tiny").config
    losses = {}
    for precision in ("fp32", "bf16"):
        built = jb.build(entry, config, seed=0, precision=precision)
        step = jb.make_train_step(built, 2, seed=0)
        losses[precision] = [float(jb.sync(step.fn())) for _ in range(3)]
    assert all(np.isfinite(losses["bf16"])), losses
    rel = abs(losses["bf16"][-1] - losses["fp32"][-1]) / abs(losses["fp32"][-1])
    assert 0 < rel < TOLERANCE["bf16"], losses


def test_jax_loss_scale_skips_overflow_and_grows():
    policy = JaxPolicy("fp16")
    state = policy.initial_scale()
    grads = {"w": jnp.array([1.0, jnp.inf])}
    _, finite, after = policy.unscale(grads, state)
    assert not bool(finite) and float(after["scale"]) == float(state["scale"]) / 2 and int(after["good"]) == 0
    good = {"scale": state["scale"], "good": jnp.int32(SCALE_INTERVAL - 1)}
    unscaled, finite, grown = policy.unscale({"w": jnp.array([4.0])}, good)
    assert bool(finite) and float(grown["scale"]) == 2 * float(state["scale"])
    np.testing.assert_allclose(np.asarray(unscaled["w"]), 4.0 / float(state["scale"]))


def test_tf32_needs_a_gpu_and_says_so():
    entry = registry.get("unet2d")
    config = entry.preset("unet2d-tiny").config
    for adapter in (tb, jb):
        with pytest.raises(DeviceError, match="tf32.*(compute capability|NVIDIA GPU)"):
            adapter.build(entry, config, seed=0, precision="tf32")


@pytest.mark.parametrize("setting,allowed", [
    ("precision: fp8", "fp32, tf32, bf16, fp16, bf16-pure"),
    ("{precision: bf16-pure, measure: [train_step]}", "for training steps"),
    ("{precision: bf16-pure, measure: [train], train: {dataset: shapes, budget: {steps: 1}}}", "for training steps"),
    ("{precision: bf16-pure, measure: [memory]}", "for training steps"),  # nothing timed: memory trains a step
    ("{backend: jax, compile: max-autotune}", "default, or compile left unset, with backend jax"),
    ("{backend: jax, compile: none}", "default, or compile left unset, with backend jax"),
    ("{backend: jax, compile: false}", "default, or compile left unset, with backend jax"),
    ("{device: cuda, attention: flash}", "precision bf16, fp16 or bf16-pure with attention 'flash'"),
    ("{device: cuda, attention: flash, precision: tf32}", "precision bf16, fp16 or bf16-pure"),
    ("{device: cuda, attention: cudnn}", "precision bf16, fp16 or bf16-pure with attention 'cudnn'"),
    ("{backend: jax, memory_format: channels_last}", "contiguous with backend jax"),
    ("{attention: paged}", "flash"),
    ("{cuda_graphs: true}", "false on cpu/tpu"),
    ("{cpus: [0, 0]}", "distinct CPU ids"),
])
def test_settings_that_cannot_run_are_rejected_at_load(setting, allowed):
    body = setting[1:-1] if setting.startswith("{") else setting
    with pytest.raises(suite_file.SpecError) as info:
        suite_file.loads(f"cases: [{{preset: unet2d-tiny, {body}}}]", "s.yaml")
    assert allowed in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("body", [
    "precision: bf16-pure, measure: [sample_step, memory]",  # memory covers the timed inference step
    "backend: jax",  # compile unset: jax jits, as it always does
    "backend: jax, compile: default",
    "device: cuda, attention: flash, precision: bf16",
    "device: cpu, attention: flash",  # the CPU flash kernel takes float32
])
def test_settings_that_can_run_are_accepted(body):
    suite_file.loads(f"cases: [{{preset: unet2d-tiny, {body}}}]", "s.yaml")


def test_attention_kernel_is_enforced_not_silently_replaced():
    entry = registry.get("unet2d")
    config = entry.preset("unet2d-tiny").config
    built = tb.build(entry, config, seed=0, attention="efficient")  # no memory-efficient kernel on CPU
    a = tb.make_inputs(built, 1)
    with pytest.raises(RuntimeError, match="No viable backend"), torch.no_grad():
        tb.denoiser(built, built.model)(a["x"], a["t"], a.get("y"), None)
    built = tb.build(entry, config, seed=0, attention="math")
    with torch.no_grad():
        pred, _ = tb.denoiser(built, built.model)(a["x"], a["t"], a.get("y"), None)
    assert torch.isfinite(pred).all()
