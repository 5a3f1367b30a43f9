"""Precision is what the record says for the whole step (docs/precision.md): torch's TF32 and
cudnn.benchmark flags hold during the forward, the backward and the optimizer update and are
restored after; jax's matmul precision covers every dot and convolution of the jitted step,
backward included; `cudnn_benchmark` is a case setting checked at load."""

from __future__ import annotations

import re

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import tests.precision_arch  # noqa: F401  (registers precision-tiny)
from architectures import registry
from bench import suite_file
from bench.backends import framework_free
from bench.backends import torch_adapter as tb
from bench.backends.torch_adapter.precision import Policy, backend_flags, read_flags
from bench.case import Case
from bench.measure import run_case

ENTRY = registry.get("precision-tiny")
CONFIG = ENTRY.preset("precision-tiny").config
OFF = {"matmul_tf32": False, "cudnn_tf32": False, "cudnn_benchmark": False}


@pytest.fixture
def opposite_flags():
    """The process starts with every flag ON (as a user's script might leave them): the policy must
    switch them off for an fp32 step and put them back after."""
    with backend_flags(True, True):
        yield {"matmul_tf32": True, "cudnn_tf32": True, "cudnn_benchmark": True}


class Spy:
    """Reads the flags inside the forward (a forward hook), the backward (a gradient hook) and the
    optimizer update (a global step pre-hook)."""

    def __init__(self, model):
        self.seen = {"forward": [], "backward": [], "optimizer": []}
        self.handles = [
            model.dense.register_forward_hook(lambda *a: self.seen["forward"].append(read_flags())),
            model.conv_in.weight.register_hook(lambda g: self.seen["backward"].append(read_flags())),
            register_optimizer_step_pre_hook(
                lambda *a: self.seen["optimizer"].append(read_flags())),
        ]

    def close(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_torch_flags_hold_for_forward_backward_and_optimizer(opposite_flags, precision):
    built = tb.build(ENTRY, CONFIG, seed=0, precision=precision)
    step = tb.make_train_step(built, 2, seed=0)
    spy = Spy(built.model)
    try:
        step.fn()
    finally:
        spy.close()
    for phase, seen in spy.seen.items():
        assert seen and all(s == OFF for s in seen), (phase, seen)
    assert read_flags() == opposite_flags  # restored
    assert built.policy.describe()["backend_flags"] == OFF


def test_torch_sampling_step_and_run_set_the_flags(opposite_flags):
    built = tb.build(ENTRY, CONFIG, seed=0)
    step = tb.make_sample_step(built, 2, seed=0)
    spy = Spy(built.model)
    try:
        step.fn()
        tb.sampling_run(built, 2, steps=2)
    finally:
        spy.close()
    assert len(spy.seen["forward"]) >= 3 and all(s == OFF for s in spy.seen["forward"])
    assert read_flags() == opposite_flags


def test_tf32_policy_turns_both_tf32_flags_on_for_the_step():
    """tf32 needs an Ampere GPU to build; the flag logic itself is device-independent."""
    policy = Policy("tf32", device_type="cuda", cudnn_benchmark=True)
    with backend_flags(False, False):
        with policy.step():
            inside = read_flags()
        assert read_flags() == OFF
    assert inside == {"matmul_tf32": True, "cudnn_tf32": True, "cudnn_benchmark": True}
    assert policy.describe()["backend_flags"] == inside


def test_cudnn_benchmark_defaults_on_for_cuda_only():
    assert Policy.make("fp32", "auto", "contiguous", torch.device("cpu")).cudnn_benchmark is False
    with pytest.raises(framework_free.DeviceError, match="cudnn_benchmark.*CUDA"):
        Policy.make("fp32", "auto", "contiguous", torch.device("cpu"), cudnn_benchmark=True)


def test_record_says_the_flags_that_were_in_force(opposite_flags):
    case = Case(id="p", index=0, arch="precision-tiny", preset="precision-tiny", overrides={}, backend="torch",
                device="cpu", batch=2, measure=("sample_step", "train_step"), threads=1, timeout_s=16.0)
    rec = run_case(case)
    for name in ("sample_step", "train_step"):
        t = rec["timing"][name]
        assert t["precision"]["backend_flags"] == OFF
        assert "dtype" not in t["device"] and "tf32_matmul" not in t["device"]  # no global state as a device fact
    assert case.cudnn_benchmark is None  # auto: on for CUDA, off here


@pytest.mark.parametrize("setting,allowed", [
    ("{cudnn_benchmark: true}", "false or null on cpu/tpu"),
    ("{cudnn_benchmark: true, backend: jax, device: cuda}", "null with backend jax"),
    ("{cudnn_benchmark: sometimes}", "true, false or null"),
])
def test_cudnn_benchmark_is_checked_at_load(setting, allowed):
    with pytest.raises(suite_file.SpecError) as info:
        suite_file.loads(f"cases: [{{preset: unet2d-tiny, {setting[1:-1]}}}]", "s.yaml")
    assert allowed in str(info.value) and "cudnn_benchmark" in str(info.value) and "\n" not in str(info.value)


def test_cudnn_benchmark_setting_names_the_case():
    suite = suite_file.loads("cases: [{preset: unet2d-tiny, device: cuda, matrix: {cudnn_benchmark: [null, true, false]}}]")
    assert [c.cudnn_benchmark for c in suite.cases] == [None, True, False]
    assert len({c.id for c in suite.cases}) == 3 and suite.cases[2].id.endswith("cudnn-benchmark-off")


@pytest.mark.parametrize("precision,highest", [("fp32", True), ("bf16", False)])
def test_jax_matmul_precision_covers_every_dot_and_conv_of_the_jitted_step(precision, highest):
    """The compiled training step's dots and convolutions, backward and optimizer included, all carry
    the policy's precision (fp32: HIGHEST, so no TF32 on a GPU); forward alone has 3 of them."""
    from bench.backends import jax_adapter as jb

    built = jb.build(ENTRY, CONFIG, seed=0, precision=precision)
    step = jb.make_train_step(built, 2, seed=0, compile=False)  # its inputs; compiled below, fast
    trainer = jb.Trainer(built)
    trainer.compile_step(step.inputs, options=jb.FAST_COMPILE)
    text = trainer._run.as_text()
    ops = re.findall(r"= \S+ (?:dot|convolution)\(.*", text)
    assert len(ops) > 3, ops  # the backward's too
    marked = [op for op in ops if "operand_precision={highest,highest}" in op]
    assert len(marked) == (len(ops) if highest else 0)
    assert built.policy.describe()["backend_flags"]["default_matmul_precision"] == ("highest" if highest else "default")


def test_flags_work_after_other_code_used_torchs_newer_api():
    """torch >= 2.9 raises when its legacy allow_tf32 flags are read after the fp32_precision API was
    used; a step must still set, record and restore (in a child: the state is process-wide)."""
    import subprocess
    import sys

    from bench.child_process import child_env

    code = ("import torch; b = torch.backends\n"
            "b.cuda.matmul.fp32_precision = 'tf32'; b.cudnn.conv.fp32_precision = 'ieee'\n"
            "from bench.backends.torch_adapter.precision import Policy, read_flags\n"
            "p = Policy('fp32')\n"
            "with p.step(): inside = read_flags()\n"
            "print(inside == {'matmul_tf32': False, 'cudnn_tf32': False, 'cudnn_benchmark': False},\n"
            "      read_flags()['matmul_tf32'], b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision)\n")
    env = child_env()
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "tf32", "ieee"]
