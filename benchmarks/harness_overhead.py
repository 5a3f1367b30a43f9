"""Harness overhead: the same training step (rin-tiny, torch, CPU, 1 thread) timed through
diffbench (bench.measure.run_case) and through a bare hand-written loop.

Variants run interleaved, A B B A A B ..., each in a fresh process (noise on a shared machine is
mostly between processes). Headline: the paired per-round ratio, harness / bare of the two
per-process medians of each round, its median over rounds with a percentile-bootstrap 95% CI over
rounds. The pooled ratio of medians over all samples is kept for reference only: the harness stops
adaptively (about 11 samples in a quiet process, up to 100 in a noisy one) while the bare loop takes
up to --reps, so pooling weights the two sides' noisy processes differently.

    .venv/bin/python benchmarks/harness_overhead.py [--rounds 4] [--reps 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ARCH, PRESET, BATCH = "rin", "rin-tiny", 2


def harness(reps: int) -> list[float]:  # noqa: ARG001 - same signature as bare()
    from bench.case import Case
    from bench.measure import run_case

    case = Case(id="overhead", index=0, arch=ARCH, preset=PRESET, overrides={}, backend="torch", device="cpu",
                batch=BATCH, measure=("train_step",), threads=1, timeout_s=600.0)
    # the harness's own default policy decides the count (max_reps 100, the time cap): `reps`
    # applies to the bare loop only, whose default equals that max_reps
    return run_case(case)["timing"]["train_step"]["samples_ms"]


def bare(reps: int) -> list[float]:
    """The step by hand: self-conditioning pass, loss pass, backward, AdamW (same groups).
    Same warmup and time cap as the harness's default policy (minus its IQR stop)."""
    from bench.measure.timing import TimingPolicy

    warmup, time_cap_s = TimingPolicy().warmup, TimingPolicy().time_cap_s
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    from architectures import registry
    from architectures.processes.gaussian import GaussianProcess

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = registry.get(ARCH).preset(PRESET).config
    model = registry.get(ARCH).load_model_class("torch")(cfg).train()
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1], "weight_decay": 0.01},
                             {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}], lr=1e-4)
    process = GaussianProcess(cfg.process)
    x0 = torch.randn(BATCH, cfg.channels, cfg.image_size, cfg.image_size)
    y, t, eps = torch.randint(0, cfg.num_classes, (BATCH,)), torch.rand(BATCH), torch.randn_like(x0)
    keep = (torch.rand(BATCH) < cfg.process.self_condition_rate).float()
    zeros = torch.zeros(BATCH, cfg.num_latents, cfg.latent_dim)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = process.training_loss(lambda x, s, c, z: model(x, s, y=c, latents=z), x0, t, eps, y,
                                     latents=zeros, keep=keep, stop_gradient=torch.Tensor.detach)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    samples, started = [], time.perf_counter()
    while len(samples) < reps and time.perf_counter() - started < time_cap_s:
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def run_child(variant: str, reps: int) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", variant, "--reps", str(reps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(a: list[list[float]], b: list[list[float]]) -> dict:
    import numpy as np

    from bench.measure.stats import bootstrap_median_ci, bootstrap_ratio_ci

    pooled_a, pooled_b = np.concatenate(a), np.concatenate(b)
    per_a, per_b = [float(np.median(s)) for s in a], [float(np.median(s)) for s in b]
    paired = np.asarray(per_a) / np.asarray(per_b)  # round i: harness process i over bare process i
    return {
        "paired_ratio": float(np.median(paired)), "paired_ratio_ci95": bootstrap_median_ci(paired),
        "paired_ratios": [float(v) for v in paired],
        "step": f"{ARCH}/{PRESET} torch train step, batch {BATCH}, CPU, 1 thread",
        "harness_median_ms": float(np.median(pooled_a)), "bare_median_ms": float(np.median(pooled_b)),
        "ratio_of_medians": float(np.median(pooled_a) / np.median(pooled_b)),
        "ratio_ci95": bootstrap_ratio_ci(pooled_a, pooled_b),
        "per_process_medians_ms": {"harness": per_a, "bare": per_b},
        "ratio_of_per_process_medians": float(np.median(per_a) / np.median(per_b)),
        "ratio_ci95_per_process": bootstrap_ratio_ci(per_a, per_b),
        "samples": {"harness": sum(map(len, a)), "bare": sum(map(len, b))}, "rounds": len(a),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="A B pairs, each variant in a fresh process")
    p.add_argument("--reps", type=int, default=100, help="at most this many timed steps per bare process "
                   "(the harness's default max_reps; both stop at its time cap)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=("harness", "bare"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps((harness if args.child == "harness" else bare)(args.reps)))
        return 0
    a, b = [], []
    for i in range(args.rounds):  # A B, B A, ...: neither variant always runs first
        for variant in ("harness", "bare") if i % 2 == 0 else ("bare", "harness"):
            (a if variant == "harness" else b).append(run_child(variant, args.reps))
    r = report(a, b)
    if args.json:
        print(json.dumps(r))
    else:
        lo, hi = r["paired_ratio_ci95"]
        plo, phi = r["ratio_ci95"]
        print(f"{r['step']}: harness / bare {r['paired_ratio']:.3f} (95% CI {lo:.3f}-{hi:.3f}), paired per-round "
              f"ratio of per-process medians over {r['rounds']} A/B rounds; harness {r['harness_median_ms']:.2f} ms, "
              f"bare {r['bare_median_ms']:.2f} ms; pooled samples (reference only) {r['ratio_of_medians']:.3f} "
              f"(95% CI {plo:.3f}-{phi:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
