"""Precision, attention-kernel and memory-format policies of the torch adapter (docs/precision.md).

Model files never see these: the adapter runs each whole step (forward, backward, optimizer; a
sampler step) inside `Policy.step`, which sets torch's global backend flags (TF32 for matmuls and
cuDNN convolutions, cudnn.benchmark) from the policy, records what is in force, and restores them
after; it wraps each network call in `Policy.call` (autocast, SDPA kernel) and the training update
in `Policy.backward_and_step`. The process math (schedules, losses, sampler updates) stays in
float32 under every policy; only the network runs in reduced precision.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from bench.backends.framework_free import DeviceError, dtype_names

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "bf16-pure": torch.bfloat16}
SDPA = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}


@dataclass
class Policy:
    precision: str = "fp32"
    attention: str = "auto"
    memory_format: str = "contiguous"
    device_type: str = "cpu"
    cudnn_benchmark: bool = False  # torch.backends.cudnn.benchmark during the step (autotuned convs)
    fused_adamw: bool = False  # torch.optim.AdamW(fused=True) for the training step's AdamW
    scaler: object = field(default=None, repr=False)
    flags_in_force: dict | None = None  # the backend flags read back inside the last step

    @classmethod
    def make(cls, precision: str, attention: str, memory_format: str, device: torch.device,
             cudnn_benchmark: bool | None = None, fused_adamw: bool = False) -> Policy:
        """cudnn_benchmark None: on for CUDA (as the official training scripts set it), off elsewhere."""
        if precision == "tf32":
            if device.type != "cuda" or torch.cuda.get_device_capability(device)[0] < 8:
                raise DeviceError(f"precision 'tf32' needs an NVIDIA GPU of compute capability >= 8.0 (Ampere or "
                                  f"newer), not {device}; allowed there: fp32 or bf16")
        if precision in ("bf16", "bf16-pure") and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"precision {precision!r}: {torch.cuda.get_device_name(device)} has no bfloat16 support")
        if memory_format == "channels_last" and device.type not in ("cuda", "cpu"):
            raise DeviceError(f"memory_format 'channels_last' on {device}: only cuda and cpu")
        if cudnn_benchmark and device.type != "cuda":
            raise DeviceError(f"cudnn_benchmark on {device}: cuDNN autotuning needs a CUDA device")
        benchmark = device.type == "cuda" if cudnn_benchmark is None else bool(cudnn_benchmark)
        return cls(precision, attention, memory_format, device.type, benchmark, bool(fused_adamw))

    # -- the model -----------------------------------------------------------------------
    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Weights as the policy stores them: bf16 for bf16-pure, float32 (master) otherwise."""
        if self.precision == "bf16-pure":
            model = model.to(torch.bfloat16)
        if self.memory_format == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        return model

    def inputs(self, x):
        """A float input as the network gets it (bf16-pure casts; channels_last re-strides 4-D)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return x
        if self.precision == "bf16-pure":
            x = x.to(torch.bfloat16)
        if self.memory_format == "channels_last" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def step(self):
        """Around one whole step (forward, backward, optimizer update; or a sampler step): the global
        backend flags of this policy, read back into `flags_in_force`, restored afterwards."""
        with backend_flags(self.precision == "tf32", self.cudnn_benchmark):
            self.flags_in_force = read_flags()
            yield

    @contextlib.contextmanager
    def call(self):
        """Around one network call: autocast for mixed precision, the backend flags (again, for a call
        made outside a step), the SDPA kernel."""
        with contextlib.ExitStack() as stack:
            if self.precision in DTYPES:  # bf16-pure too: ops fed by the float32 time embedding
                stack.enter_context(torch.autocast(self.device_type, dtype=DTYPES[self.precision]))
            stack.enter_context(backend_flags(self.precision == "tf32", self.cudnn_benchmark))
            if self.attention != "auto":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                stack.enter_context(sdpa_kernel(getattr(SDPBackend, SDPA[self.attention])))
            yield

    @staticmethod
    def output(y):
        """The network output back in float32 for the process math."""
        return y.float() if isinstance(y, torch.Tensor) and y.is_floating_point() else y

    # -- training ---------------------------------------------------------------------------
    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, clip=None) -> None:
        """loss.backward() and optimizer.step(); fp16 goes through a dynamic loss scaler
        (torch.amp.GradScaler: scale, skip steps with inf/nan grads, adjust the scale).
        `clip(params)` (optional) clips gradients after unscaling."""
        if self.precision != "fp16":
            loss.backward()
            if clip is not None:
                clip()
            optimizer.step()
            return
        if self.scaler is None:
            self.scaler = torch.amp.GradScaler(self.device_type)
        self.scaler.scale(loss).backward()
        if clip is not None:
            self.scaler.unscale_(optimizer)
            clip()
        self.scaler.step(optimizer)
        self.scaler.update()

    def describe(self) -> dict:
        out = {"precision": self.precision, "attention": self.attention, "memory_format": self.memory_format,
               **dtype_names(self.precision),
               "method": {"fp32": "float32, TF32 off (matmul and cuDNN) for the whole step",
                   "tf32": "torch.backends TF32 matmul+cudnn on for the whole step",
                          "bf16": "torch.autocast(bfloat16), float32 master weights",
                          "fp16": "torch.autocast(float16) + GradScaler, float32 master weights",
                          "bf16-pure": "weights and inputs cast to bfloat16"}[self.precision]}
        out["backend_flags"] = self.flags_in_force  # None until a step ran
        out["fused_adamw"] = self.fused_adamw
        if self.scaler is not None:
            out["loss_scale"] = float(self.scaler.get_scale())
        return out


# The legacy flags (allow_tf32) are set and read, never torch's newer fp32_precision API: torch >= 2.9
# raises when the two are mixed, and torch.compile's inductor still reads cudnn.allow_tf32.
def read_flags() -> dict:
    """The TF32 and cuDNN autotuning flags in force now (matmul TF32 is off in fp32 but on under
    precision tf32; under autocast the matmuls and convs run in bf16/fp16 whatever it says)."""
    api, matmul, conv = _tf32_state()
    if api != "legacy":
        matmul, conv = matmul == "tf32", conv == "tf32"
    return {"matmul_tf32": bool(matmul), "cudnn_tf32": bool(conv),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}


@contextlib.contextmanager
def backend_flags(tf32: bool, benchmark: bool):
    """TF32 for cuBLAS matmuls and cuDNN convs, and cudnn.benchmark, set for the block and restored."""
    before, benchmark_before = _tf32_state(), torch.backends.cudnn.benchmark
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        _set_tf32_state(before)
        torch.backends.cudnn.benchmark = benchmark_before


def _tf32_state() -> tuple:
    """The TF32 settings as they were set: the legacy flags, or torch's fp32_precision strings when
    other code set those (then reading the legacy flags raises)."""
    try:
        return "legacy", torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    except RuntimeError:
        return "fp32_precision", torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision


def _set_tf32_state(state: tuple) -> None:
    api, matmul, conv = state
    if api == "legacy":
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv
    else:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = matmul, conv
