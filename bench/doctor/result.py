"""One doctor check's outcome, and the device facts every check needs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Result:
    name: str
    ok: bool | None  # None: informational or skipped (does not fail the doctor)
    summary: str  # one line
    detail: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return {True: "ok", False: "FAIL", None: "info"}[self.ok]

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "summary": self.summary, "seconds": self.seconds,
                "detail": self.detail}


def precisions(device) -> list[str]:
    """The float precisions the torch policy can run on this device (tf32: Ampere or newer)."""
    import torch

    if device.type != "cuda":
        return ["fp32", "bf16"]
    out = ["fp32"]
    if torch.cuda.get_device_capability(device)[0] >= 8:
        out.append("tf32")
    if torch.cuda.is_bf16_supported():
        out.append("bf16")
    return out


def device_name(device) -> str:
    import platform

    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())


def slug(name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200' (a directory name under reports/example/gpu/)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"
