"""Peak memory of a case: the process's peak RSS (CPU) and the device peak from the adapter."""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (the case runs alone in a fresh process)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


def memory_record(device_peak_bytes: int | None, device: str, method: str) -> dict:
    """`device_peak_bytes` is None where the backend has no memory statistics (XLA on CPU)."""
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_method": "resource.getrusage(RUSAGE_SELF).ru_maxrss",
        "device_peak_bytes": device_peak_bytes,
        "device_peak_method": method,
        "device": device,
    }
