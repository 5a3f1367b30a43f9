"""False-positive rate and power of `diffbench compare` on this machine (not a test).

Runs one small suite N times through `diffbench run` (each run: R rounds per case, interleaved):
unet2d-tiny's sampling step (torch, CPU, 1 thread, batch 2) as is, and the same model with
`model_channels` 16 -> 20 (about 30% more CPU time per step). The code never changes between
runs, so every pair of runs (i < j) is compared on both cases and any flag is a false positive;
power is the flag rate of the unchanged model in run i against the slower one in run j (every
i != j, and i == j: the two interleaved in one run). Both metrics of `compare --metric` are
scored at compare's default threshold and alpha.

    .venv/bin/python benchmarks/compare_fpr.py [--runs 5] [--rounds 5] [--out DIR] [--json]

Runs already in --out are reused (add runs to them with a later call); --runs 0 only analyzes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import compare, records  # noqa: E402
from bench.cases import DEFAULT_ROUNDS  # noqa: E402

SUITE = """name: compare-fpr
defaults: {{backend: torch, device: cpu, batch: 2, threads: 1, measure: [sample_step], rounds: {rounds}, timeout: 300}}
cases:
  - {{preset: unet2d-tiny}}
  - {{preset: unet2d-tiny, override: {{model_channels: 20}}}}
"""
STEP = "sample_step"


def run_suite(out: Path, rounds: int) -> float:
    suite = out / "compare-fpr.yaml"
    suite.write_text(SUITE.format(rounds=rounds))
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(out / "results"), "--quiet"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def load_runs(out: Path) -> list[tuple[dict, dict]]:
    """(unchanged, slower) timing entries of each complete run, oldest first."""
    runs = []
    for run_dir in sorted((out / "results" / "compare-fpr").glob("*")):
        recs = sorted(records.read_records(run_dir).values(), key=lambda r: r["case"]["index"])
        if len(recs) == 2 and all(r.get("status") == "ok" for r in recs):
            runs.append(tuple(r["timing"][STEP] for r in recs))
    return runs


def score(runs, metric: str, threshold: float, alpha: float) -> dict:
    def verdict(ta, tb):
        return compare.compare_steps(ta, tb, threshold, alpha, metric)

    same = [verdict(runs[i][c], runs[j][c]) for i, j in itertools.combinations(range(len(runs)), 2) for c in (0, 1)]
    slow = [verdict(runs[i][0], runs[j][1]) for i, j in itertools.product(range(len(runs)), repeat=2) if i != j]
    within = [verdict(r[0], r[1]) for r in runs]
    flagged = sum(v["verdict"] in ("regression", "improvement") for v in same)
    return {"metric": metric, "identical_pairs": len(same), "false_positives": flagged,
            "false_positive_rate": flagged / len(same) if same else None,
            "inconclusive": sum(v["verdict"] == "inconclusive" for v in same),
            "identical_ratios": [round(v["ratio"], 3) for v in same],
            "slow_pairs": len(slow), "power": sum(v["verdict"] == "regression" for v in slow) / len(slow) if slow else None,
            "power_same_run": sum(v["verdict"] == "regression" for v in within) / len(within) if within else None,
            "slow_ratio_median": float(sorted(v["ratio"] for v in slow)[len(slow) // 2]) if slow else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="new runs of the suite (default 5; 0: analyze --out only)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds per case (default {DEFAULT_ROUNDS})")
    p.add_argument("--out", type=Path, default=None, help="folder for the suite and its runs (default: a temp folder)")
    p.add_argument("--threshold", default="5%")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="compare-fpr-"))
    out.mkdir(parents=True, exist_ok=True)
    threshold, alpha = compare.parse_threshold(args.threshold), compare.parse_alpha(args.alpha)
    loads, walls = [os.getloadavg()], []
    for i in range(args.runs):
        walls.append(run_suite(out, args.rounds))
        loads.append(os.getloadavg())
        print(f"run {i + 1}/{args.runs}: {walls[-1]:.0f} s, load average {loads[-1][0]:.1f}", file=sys.stderr)
    runs = load_runs(out)
    found = sorted({len(t.get("rounds") or [None]) for run in runs for t in run})
    result = {"out": str(out), "runs": len(runs), "rounds": found, "threshold": threshold, "alpha": alpha,
              "run_wall_s": [round(w) for w in walls], "load_1min": [round(x[0], 1) for x in loads],
              "scores": [score(runs, m, threshold, alpha) for m in compare.METRICS]}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{len(runs)} runs of {'/'.join(map(str, found))} rounds in {out}; threshold {threshold:g}, alpha {alpha:g}; "
          f"1-min load average {min(result['load_1min'])}-{max(result['load_1min'])}")
    print("| metric | identical-code comparisons | false positives | FPR | inconclusive | slowed-model comparisons "
          "| power (runs i != j) | power (same run) | median ratio slowed/unchanged |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in result["scores"]:
        fpr = "-" if s["false_positive_rate"] is None else f"{s['false_positive_rate']:.2f}"
        power = "-" if s["power"] is None else f"{s['power']:.2f}"
        same = "-" if s["power_same_run"] is None else f"{s['power_same_run']:.2f}"
        ratio = "-" if s["slow_ratio_median"] is None else f"{s['slow_ratio_median']:.3f}"
        print(f"| {s['metric']} | {s['identical_pairs']} | {s['false_positives']} | {fpr} | {s['inconclusive']} "
              f"| {s['slow_pairs']} | {power} "
              f"| {same} | {ratio} |")
    for s in result["scores"]:
        print(f"{s['metric']}: ratios of identical code: {s['identical_ratios']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
