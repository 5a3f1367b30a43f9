"""PRNG cost in the JAX backend: init compile time and dropout-mask cost, threefry vs unsafe_rbg.

  init:    wall time of the first model.init (trace + compile + run) of a preset, at the backend's
           fast-compile setting, each impl in its own fresh process, interleaved over rounds.
  dropout: ns per element of a jitted Flax nn.Dropout(rate) on a (batch, tokens, dim) array, with
           torch.nn.functional.dropout as reference; 1 thread, medians over reps, interleaved.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/prng_cost.py [--rounds 3] [--preset rin-cifar10] [--json]

The backend's choice (bench/backends/jax_adapter/device.py INIT_PRNG_IMPL, PRNG_IMPL) follows from this.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

IMPLS = ("threefry2x32", "unsafe_rbg")
SHAPE = (8, 256, 512)


def init_child(arch: str, preset: str, impl: str) -> float:
    import jax
    import jax.numpy as jnp

    from architectures import registry
    from bench.backends import framework_free
    from bench.backends.jax_adapter import FAST_COMPILE

    entry = registry.get(arch)
    cfg = entry.preset(preset).config
    model = entry.load_model_class("jax")(cfg)
    dummy = framework_free.random_inputs(cfg.input_shapes(1), 0, cfg.num_classes)
    start = time.perf_counter()
    key = jax.random.key(0, impl=impl)
    init = jax.jit(lambda k: model.init(k, **{n: jnp.asarray(v) for n, v in dummy.items()}),
                   compiler_options=FAST_COMPILE)
    jax.block_until_ready(init(key))
    return time.perf_counter() - start


def dropout_ns(reps: int, rate: float) -> dict[str, float]:
    """ns per element for each jax impl and torch, interleaved reps, medians."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    torch.set_num_threads(1)
    n = int(np.prod(SHAPE))
    x = jnp.ones(SHAPE)
    xt = torch.ones(SHAPE)
    fns = {}
    for impl in IMPLS:
        drop = nn.Dropout(rate)
        f = jax.jit(lambda k, x, d=drop: d.apply({}, x, deterministic=False, rngs={"dropout": k}))
        keys = [jax.random.key(i, impl=impl) for i in range(reps + 1)]
        jax.block_until_ready(f(keys[0], x))
        fns[impl] = (f, keys)
    times: dict[str, list[float]] = {k: [] for k in (*IMPLS, "torch")}
    for i in range(reps):
        for impl, (f, keys) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(keys[i + 1], x))
            times[impl].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch.nn.functional.dropout(xt, rate, training=True)
        times["torch"].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) / n * 1e9 for k, v in times.items()}


def run(args: list[str]) -> dict | float:
    from bench.backends.threads import thread_env

    cpu = str(sorted(os.sched_getaffinity(0))[0])
    cmd = ["taskset", "-c", cpu, sys.executable, __file__, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **thread_env(1)}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arch", default="rin")
    p.add_argument("--preset", default="rin-cifar10")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=("init", "dropout"), help=argparse.SUPPRESS)
    p.add_argument("--impl", choices=IMPLS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "init":
        print(json.dumps(init_child(args.arch, args.preset, args.impl)))
        return 0
    if args.child == "dropout":
        print(json.dumps(dropout_ns(args.reps, args.rate)))
        return 0
    import numpy as np

    init = {impl: [] for impl in IMPLS}
    drops = []
    for i in range(args.rounds):
        for impl in IMPLS if i % 2 == 0 else IMPLS[::-1]:
            init[impl].append(run(["--child", "init", "--impl", impl, "--arch", args.arch, "--preset", args.preset]))
        drops.append(run(["--child", "dropout", "--reps", str(args.reps), "--rate", str(args.rate)]))
    out = {
        "init_first_call_s": {impl: float(np.median(v)) for impl, v in init.items()},
        "init_ratio_rbg_over_threefry_per_round": [a / b for a, b in zip(init["unsafe_rbg"], init["threefry2x32"])],
        "dropout_ns_per_element": {k: float(np.median([d[k] for d in drops])) for k in drops[0]},
        "setup": f"{args.arch}/{args.preset} init; dropout rate {args.rate} on {SHAPE}; 1 thread; "
                 f"{args.rounds} rounds",
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
