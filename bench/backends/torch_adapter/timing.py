"""How a torch step is timed: waiting for the device (sync), CUDA events for device time, and
torch.compile's lazy compile measured as the first call."""

from __future__ import annotations

import time
from typing import Any

import torch

from bench.backends.framework_free import Built, Step
from bench.backends.torch_adapter.arrays import tensors


def sync(x: Any = None) -> Any:
    """Wait for the device work behind x (CUDA is asynchronous; CPU ops already are done); with
    no tensor in x (None), drain the current CUDA device, when this process has started CUDA."""
    device = sync_device(x)
    if device is not None:
        torch.cuda.synchronize(device)
    return x


def sync_device(x: Any = None) -> torch.device | None:
    """The CUDA device sync(x) drains: x's first tensor's, or the current device when x holds no
    tensor; None when there is nothing to wait for (CPU tensors, or CUDA never started)."""
    found = tensors(x)
    if found:
        return found[0].device if found[0].is_cuda else None
    if torch.cuda.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return None


class CudaEvents:
    """Device time of one step from CUDA events recorded on the current stream around it."""

    def __init__(self):
        self.begin = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def start(self):
        self.begin.record()

    def stop(self):
        self.end.record()

    def seconds(self) -> float:
        self.end.synchronize()
        return self.begin.elapsed_time(self.end) / 1e3


def device_timer(device) -> CudaEvents | None:
    """CUDA events for CUDA devices; None elsewhere (host wall clock is the device time on CPU)."""
    return CudaEvents() if torch.device(device).type == "cuda" else None


def maybe_compile(built: Built, compile: bool | str | None):
    """torch.compile with a mode ("default", "reduce-overhead", "max-autotune"; True = default)."""
    if not compile or compile == "none":
        return built.model
    return torch.compile(built.model, mode=None if compile in (True, "default") else compile)


def first_call_seconds(step: Step) -> Step:
    """torch.compile compiles lazily: the first call's time (compile + one run) is reported, with
    the graphs and graph breaks dynamo counted."""
    from torch._dynamo.utils import counters

    counters.clear()
    start = time.perf_counter()
    sync(step.fn())
    step.compile_seconds = time.perf_counter() - start
    step.notes.append("torch.compile: compile_s is the first call (compile + one execution)")
    step.info.update(compile_graphs=int(counters["stats"].get("unique_graphs", 0)),
                     graph_breaks=int(sum(counters["graph_break"].values())),
                     graph_break_reasons=sorted(counters["graph_break"])[:10])
    return step
