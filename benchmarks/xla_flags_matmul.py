"""XLA:CPU flags vs MKL: GFLOP/s of a plain fp32 matmul, jnp.dot under XLA_FLAGS variants against
torch.mm, 1 thread, each variant in a fresh process pinned to the same CPU, interleaved over rounds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/xla_flags_matmul.py [--rounds 3] [--n 1024] [--json]

Every variant starts from the worker's own flags (bench.backends.threads.thread_env(1)).
Results and the decision are in docs/backend-speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = {  # name -> extra XLA_FLAGS (None: torch.mm)
    "xla-default": "",
    "xla-onednn": "--xla_cpu_use_onednn=true",
    "xla-xnnpack": "--xla_cpu_use_xnnpack=true",
    "xla-onednn-custom-call": "--xla_cpu_experimental_onednn_custom_call=true",
    "torch-mm": None,
}


def child(variant: str, n: int, reps: int) -> float:
    """Median GFLOP/s of an (n, n) @ (n, n) fp32 matmul."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if VARIANTS[variant] is None:
        import torch

        torch.set_num_threads(1)
        x = torch.from_numpy(a)
        f = lambda: torch.mm(x, x)
    else:
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(a)
        dot = jax.jit(jnp.dot)
        f = lambda: dot(x, x).block_until_ready()
    for _ in range(3):
        f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times)) / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.n, args.reps)))
        return 0
    import numpy as np

    from bench.backends.threads import thread_env

    cpu = str(sorted(os.sched_getaffinity(0))[0])
    res: dict[str, list[float]] = {v: [] for v in VARIANTS}
    names = list(VARIANTS)
    for i in range(args.rounds):
        for v in names[i % len(names):] + names[:i % len(names)]:
            env = {**os.environ, **thread_env(1)}
            env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {VARIANTS[v] or ''}".strip()
            cmd = ["taskset", "-c", cpu, sys.executable, __file__, "--child", v, "--n", str(args.n),
                   "--reps", str(args.reps)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                res[v].append(float("nan"))
                print(f"{v}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            res[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    torch_per_round = np.asarray(res["torch-mm"])
    out = {v: {"gflop_per_s_median": float(np.nanmedian(r)),
               "over_torch_per_round_median": float(np.nanmedian(np.asarray(r) / torch_per_round)),
               "flags": VARIANTS[v]} for v, r in res.items()}
    if args.json:
        print(json.dumps(out))
    else:
        for v, r in out.items():
            print(f"{v:24s} {r['gflop_per_s_median']:7.1f} GFLOP/s  x{r['over_torch_per_round_median']:.3f} of torch.mm  "
                  f"{r['flags'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
