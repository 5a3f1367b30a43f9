"""Torch devices, threads and device memory."""

from __future__ import annotations

import platform
from typing import Any

import torch

from bench.backends.framework_free import DeviceError, parse_device

NAME = "torch"


def resolve_device(spec: str = "cpu") -> torch.device:
    kind, index = parse_device(spec)
    if kind == "tpu":
        raise DeviceError("the torch backend does not run on TPU (torch_xla is not supported); use backend 'jax'")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} unavailable: torch {torch.__version__} sees no CUDA device "
                          f"(torch.version.cuda={torch.version.cuda})")
    index = index or 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} unavailable: torch sees {count} CUDA device(s)")
    return torch.device("cuda", index)


def set_threads(threads: int) -> dict[str, Any]:
    """Intra-op threads (torch.set_num_threads); returns what to record."""
    torch.set_num_threads(threads)
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}


def device_description(device: torch.device | str = "cpu") -> dict[str, Any]:
    device = torch.device(device)
    info = {"backend": NAME, "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    # the TF32 / cudnn.benchmark flags of a step are set by its policy: recorded under precision.backend_flags
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    else:
        info.update(name=platform.processor() or platform.machine())
    return info


def reset_peak_memory(device: torch.device | str) -> None:
    """Reset the CUDA peak counter; returns the mark peak_memory_span takes (torch needs none)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device | str) -> int | None:
    """Peak bytes allocated on a CUDA device since the last reset; None on CPU (use the process RSS)."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def peak_memory_span(device: torch.device | str, since=None) -> dict:
    """{"bytes", "covers"}: the peak since reset_peak_memory (None on CPU); `since` (its mark) is
    not needed: torch resets the counter itself."""
    peak = peak_memory(device)
    return {"bytes": peak, "covers": None if peak is None else "the timed steps (peak reset before them)"}
