"""Backend speed: JAX vs torch training steps, and the JAX models with and without RowDense.

Every measurement is one training step timed by diffbench itself (bench.measure.run_case,
its default timing policy) in a fresh process, 1 thread, pinned to the same CPU. Variants run
interleaved, in a rotated order each round, so slow phases of a shared machine hit all of them.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/backend_speed.py [--rounds 4] [--groups rin,unet]
        [--variants torch,jax,jax-3d] [--json]

Each process times both the training step and the sampling step (the network forward, twice with
classifier-free guidance, plus the sampler update); each is reported separately.

Variants (per group):
  torch     the torch backend
  jax       the JAX backend as shipped (Flax Dense on 3-D inputs folded into rows, RowDense)
  jax-3d    the JAX backend with RowDense swapped back to plain nn.Dense (the layout before)

Reported per pair, e.g. jax/torch: the median over rounds of the per-round ratio of per-process
medians (a round runs every variant once, in a fresh process each, back to back), with a
percentile-bootstrap 95% CI over rounds; both for wall time and for process CPU time (CPU time is
what the step cost when the core was shared with other jobs). The load average before and after
the run is printed with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

GROUPS = {  # group -> (arch, preset, batch, variants, pairs)
    "rin": ("rin", "rin-cifar10", 8, ("torch", "jax", "jax-3d"), (("jax", "torch"), ("jax", "jax-3d"),
                                                                  ("jax-3d", "torch"))),
    "unet": ("unet2d", "unet2d-tiny", 4, ("torch", "jax", "jax-3d"), (("jax", "jax-3d"), ("jax", "torch"))),
}


STEPS = ("train_step", "sample_step")


def child(group: str, variant: str, cpu: int) -> dict:
    """One process, one variant: the harness's step records (wall and CPU medians), per step."""
    from bench.case import Case
    from bench.measure import run_case

    arch, preset, batch, _, _ = GROUPS[group]
    if variant == "jax-3d":  # swap the folding Dense back for nn.Dense (same parameters)
        import flax.linen as nn

        from architectures.rin import rin_flax
        from architectures.unet import blocks_flax

        rin_flax.RowDense = blocks_flax.RowDense = nn.Dense
    backend = "torch" if variant == "torch" else "jax"
    case = Case(id=f"speed/{group}/{variant}", index=0, arch=arch, preset=preset, overrides={}, backend=backend,
                device="cpu", batch=batch, measure=STEPS, threads=1, cpus=(cpu,), timeout_s=900.0)
    timing = run_case(case)["timing"]
    return {step: {"wall_ms": t["median_ms"], "cpu_ms": t.get("cpu_median_ms"), "n": len(t["samples_ms"]),
                   "contended": t.get("contended")} for step, t in ((s, timing[s]) for s in STEPS)}


def run_child(group: str, variant: str, cpu: int) -> dict:
    from bench.backends.threads import thread_env

    env = {**os.environ, **thread_env(1)}
    cmd = [sys.executable, __file__, "--child", f"{group}:{variant}", "--cpu", str(cpu)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"child {group}:{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def paired(a: list[float], b: list[float]) -> dict:
    """Median of per-round ratios a_i / b_i, bootstrap CI over rounds."""
    import numpy as np

    from bench.measure.stats import bootstrap_median_ci

    r = np.asarray(a, dtype=float) / np.asarray(b, dtype=float)
    lo, hi = bootstrap_median_ci(r) if r.size > 1 else (float(r[0]), float(r[0]))
    return {"ratio": float(np.median(r)), "ci95": [lo, hi], "per_round": [float(v) for v in r]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--groups", default="rin,unet", help=f"comma list of {sorted(GROUPS)}")
    p.add_argument("--variants", default=None, help="comma list of variants to run (default: all of the group's)")
    p.add_argument("--cpu", type=int, default=None, help="CPU every process is pinned to (default: first allowed)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cpu = args.cpu if args.cpu is not None else sorted(os.sched_getaffinity(0))[0]
    if args.child:
        print(json.dumps(child(*args.child.split(":"), cpu)))
        return 0
    groups = [g for g in args.groups.split(",") if g]
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        print(f"backend_speed.py: --groups: unknown group(s) {bad}; allowed: {sorted(GROUPS)}", file=sys.stderr)
        return 2
    out, load_before = {}, os.getloadavg()
    for group in groups:
        arch, preset, batch, variants, pairs = GROUPS[group]
        if args.variants:
            wanted = [v for v in args.variants.split(",") if v]
            if any(v not in variants for v in wanted):
                print(f"backend_speed.py: --variants: {wanted} not all in {list(variants)}", file=sys.stderr)
                return 2
            variants = tuple(wanted)
            pairs = tuple((a, b) for a, b in pairs if a in variants and b in variants)
        res: dict[str, list[dict]] = {v: [] for v in variants}
        for i in range(args.rounds):
            order = variants[i % len(variants):] + variants[:i % len(variants)]  # rotate: no fixed first
            for v in order:
                res[v].append(run_child(group, v, cpu))
                print(f"[{group} round {i}] {v}: {res[v][-1]}", file=sys.stderr, flush=True)
        rows = {}
        for step in STEPS:
            for a, b in pairs:
                ra, rb = [r[step] for r in res[a]], [r[step] for r in res[b]]
                rows[f"{step} {a}/{b}"] = {kind: paired([r[f"{kind}_ms"] for r in ra], [r[f"{kind}_ms"] for r in rb])
                                           for kind in ("cpu", "wall") if all(r[f"{kind}_ms"] for r in ra + rb)}
        out[group] = {"step": f"{arch}/{preset}, batch {batch}, CPU {cpu}, 1 thread, {args.rounds} rounds",
                      "per_process": res, "ratios": rows}
    load = {"before": list(load_before), "after": list(os.getloadavg())}
    if args.json:
        print(json.dumps({"load_average": load, **out}))
    else:
        print(f"load average (1, 5, 15 min): before {load['before']}, after {load['after']}")
        for group, g in out.items():
            print(g["step"])
            for name, kinds in g["ratios"].items():
                text = ", ".join(f"{k} {v['ratio']:.3f} (95% CI {v['ci95'][0]:.3f}-{v['ci95'][1]:.3f}; per round "
                                 + " ".join(f"{x:.3f}" for x in v["per_round"]) + ")" for k, v in kinds.items())
                print(f"  {name}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
