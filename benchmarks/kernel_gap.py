"""Kernel-level JAX/torch gap on CPU: GFLOP/s of the kernels a training step is made of, XLA:CPU
(jax.jit) against torch (MKL / oneDNN), 1 thread, each backend in a fresh process pinned to the
same CPU, interleaved over rounds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/kernel_gap.py [--rounds 3] [--json]

Kernels (fp32): matmul; the weight gradient of a Dense on (batch, tokens, dim) input, as a 3-D
contraction and folded into rows (what RowDense gives XLA); a 3x3 conv forward, its input
gradient and its weight gradient. Explains the remaining gap in docs/backend-speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

B, N, D, F = 8, 256, 512, 512  # dense: (B, N, D) @ (D, F)
CB, CH, CC = 8, 16, 128  # conv: (CB, CH, CH, CC) -> CC, 3x3, SAME


def _flops() -> dict[str, float]:
    dense = 2.0 * B * N * D * F
    conv = 2.0 * CB * CH * CH * CC * CC * 9
    return {"matmul": 2.0 * 1024**3, "dense_wgrad_3d": dense, "dense_wgrad_rows": dense,
            "conv_fwd": conv, "conv_dgrad": conv, "conv_wgrad": conv}


def _time(f, reps: int) -> float:
    import numpy as np

    for _ in range(3):
        f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def jax_kernels(reps: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    k = jax.random.split(jax.random.key(0), 6)
    m = jax.random.normal(k[0], (1024, 1024))
    x, g = jax.random.normal(k[1], (B, N, D)), jax.random.normal(k[2], (B, N, F))
    xc, w = jax.random.normal(k[3], (CB, CH, CH, CC)), jax.random.normal(k[4], (3, 3, CC, CC))
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    _, vjp = jax.vjp(conv, xc, w)
    gc = conv(xc, w)
    fns = {
        "matmul": jax.jit(jnp.dot), "dense_wgrad_3d": jax.jit(lambda x, g: jnp.einsum("bnd,bnf->df", x, g)),
        "dense_wgrad_rows": jax.jit(lambda x, g: x.reshape(-1, D).T @ g.reshape(-1, F)),
        "conv_fwd": jax.jit(conv), "conv_dgrad": jax.jit(lambda x, w, g: jax.vjp(lambda a: conv(a, w), x)[1](g)[0]),
        "conv_wgrad": jax.jit(lambda x, w, g: jax.vjp(lambda b: conv(x, b), w)[1](g)[0]),
    }
    del vjp
    args = {"matmul": (m, m), "dense_wgrad_3d": (x, g), "dense_wgrad_rows": (x, g), "conv_fwd": (xc, w),
            "conv_dgrad": (xc, w, gc), "conv_wgrad": (xc, w, gc)}
    return {n: _time(lambda f=f, a=args[n]: jax.block_until_ready(f(*a)), reps) for n, f in fns.items()}


def torch_kernels(reps: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = torch.randn(1024, 1024)
    x, g = torch.randn(B, N, D), torch.randn(B, N, F)
    xc, w = torch.randn(CB, CC, CH, CH), torch.randn(CC, CC, 3, 3)
    gc = torch.nn.functional.conv2d(xc, w, padding=1)
    tg = torch.nn.grad
    fns = {
        "matmul": lambda: torch.mm(m, m),
        "dense_wgrad_3d": lambda: torch.einsum("bnd,bnf->df", x, g),
        "dense_wgrad_rows": lambda: x.reshape(-1, D).T @ g.reshape(-1, F),
        "conv_fwd": lambda: torch.nn.functional.conv2d(xc, w, padding=1),
        "conv_dgrad": lambda: tg.conv2d_input(xc.shape, w, gc, padding=1),
        "conv_wgrad": lambda: tg.conv2d_weight(xc, w.shape, gc, padding=1),
    }
    with torch.no_grad():
        return {n: _time(f, reps) for n, f in fns.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=("jax", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps((jax_kernels if args.child == "jax" else torch_kernels)(args.reps)))
        return 0
    import numpy as np

    from bench.backends.threads import thread_env

    cpu = str(args.cpu if args.cpu is not None else sorted(os.sched_getaffinity(0))[0])
    res: dict[str, list[dict]] = {"jax": [], "torch": []}
    for i in range(args.rounds):
        for side in ("jax", "torch") if i % 2 == 0 else ("torch", "jax"):
            cmd = ["taskset", "-c", cpu, sys.executable, __file__, "--child", side, "--reps", str(args.reps)]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **thread_env(1)}, check=True)
            res[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    flops = _flops()
    table = {}
    for name, fl in flops.items():
        j = np.asarray([r[name] for r in res["jax"]])
        t = np.asarray([r[name] for r in res["torch"]])
        table[name] = {"jax_gflop_per_s": fl / float(np.median(j)) / 1e9, "torch_gflop_per_s": fl / float(np.median(t)) / 1e9,
                       "jax_over_torch_time_per_round_median": float(np.median(j / t))}
    if args.json:
        print(json.dumps(table))
    else:
        for name, r in table.items():
            print(f"{name:18s} jax {r['jax_gflop_per_s']:6.1f}  torch {r['torch_gflop_per_s']:6.1f} GFLOP/s  "
                  f"jax/torch time {r['jax_over_torch_time_per_round_median']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
