"""Does the timing loop measure the jax computation, not its dispatch? A jitted chain of matmuls
timed three ways, interleaved round by round in one process: by hand with `block_until_ready`
(the reference), through bench.measure.timing.time_step with the adapter's sync (what diffbench
records), and through time_step with no sync (dispatch only). Expected: synced / reference ~1,
unsynced / synced << 1. Moved here from a unit test: wall-clock ratios do not belong in tests.

    .venv/bin/python benchmarks/jax_sync.py [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from bench.backends import jax_adapter
    from bench.measure.timing import TimingPolicy, time_step

    def chain(x):
        for _ in range(8):
            x = jnp.tanh(x @ x)
        return x

    x = jnp.ones((384, 384), jnp.float32) / 384
    compiled = jax.jit(chain).lower(x).compile()
    jax.block_until_ready(compiled(x))
    policy = TimingPolicy(warmup=1, min_reps=7, max_reps=7, time_cap_s=30)
    rounds = {"reference": [], "synced": [], "unsynced": []}
    for _ in range(args.rounds):
        ref = []
        for _ in range(7):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(x))
            ref.append(time.perf_counter() - t0)
        rounds["reference"].append(float(np.median(ref)))
        rounds["synced"].append(float(np.median(time_step(lambda: compiled(x), jax_adapter.sync, policy)[0])))
        unsynced, _, last = time_step(lambda: compiled(x), lambda o: None, policy)
        jax.block_until_ready(last)
        rounds["unsynced"].append(float(np.median(unsynced)))
    r = {k: np.asarray(v) for k, v in rounds.items()}
    out = {"rounds": args.rounds, "median_s": {k: float(np.median(v)) for k, v in r.items()},
           "synced_over_reference": float(np.median(r["synced"] / r["reference"])),
           "unsynced_over_synced": float(np.median(r["unsynced"] / r["synced"]))}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"median per call: reference {out['median_s']['reference'] * 1e3:.2f} ms, synced "
              f"{out['median_s']['synced'] * 1e3:.2f} ms, unsynced {out['median_s']['unsynced'] * 1e3:.3f} ms; "
              f"synced/reference x{out['synced_over_reference']:.2f}, unsynced/synced x{out['unsynced_over_synced']:.3f} "
              f"(median of {args.rounds} per-round ratios)")


if __name__ == "__main__":
    main()
