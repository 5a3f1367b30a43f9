"""The CPU's matmul throughput at a thread count: the reference for CPU MFU.

    python -P -m bench.measure.cpu_peak THREADS   -> one JSON line {"fp32": {"gflop_per_s": ...}, "bf16": {...}}

Run by the runner in its own process (threads pinned before torch starts), once per run and
thread count; the result goes into run.json and into every CPU case's job.
"""

from __future__ import annotations

import json
import sys
import time

N = 1024  # large enough for the BLAS's peak kernel, small enough for ~0.3 s per dtype
SECONDS = 0.3


def measure(threads: int) -> dict:
    from bench.backends import host

    pinned = host.pin_threads(threads)
    import torch

    torch.set_num_threads(threads)
    out = {"threads": threads, "cpus": pinned["cpus"]}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(N, N, dtype=dtype), torch.randn(N, N, dtype=dtype)
        for _ in range(3):
            torch.mm(a, b)
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        out[name] = {"gflop_per_s": 2 * N**3 / best / 1e9,
                     "method": f"measured: best torch.mm {N}x{N} {name} at {threads} thread(s), torch {torch.__version__}"}
    return out


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
