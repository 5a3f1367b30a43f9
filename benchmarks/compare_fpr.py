"""False-positive rate and power of `diffbench compare` on this machine (not a test).

Runs one small suite N times through `diffbench run` (each run: R rounds per case, interleaved):
unet2d-tiny's sampling step (torch, CPU, 1 thread, batch 2) as is ("base"), its twin with seed 1
(the same cost), and the same model made slower by an override (default `num_res_blocks` 1 -> 2:
about 30% more CPU time per step here; `model_channels` 16 -> 20 adds only ~10% at this size).
The code never changes, so a flag between runs i < j on the same case is a false positive
("between runs"), and so is one between base and twin of one run ("in one run": the two
interleaved round by round). Power: base in run i against the slower model in run j != i
("between runs") or in the same run. Both metrics of `compare --metric` are scored at compare's
default threshold and alpha.

    .venv/bin/python benchmarks/compare_fpr.py [--runs 5] [--rounds 5] [--slow JSON] [--out DIR] [--json]

Runs already in --out are reused (add runs to them with a later call, with the same --rounds and
--slow); --runs 0 only analyzes.
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
from bench.case import DEFAULT_ROUNDS  # noqa: E402

SUITE = """name: compare-fpr
defaults: {{backend: torch, device: cpu, batch: 2, threads: 1, measure: [sample_step], rounds: {rounds}, timeout: 300}}
cases:
  - {{preset: unet2d-tiny}}
  - {{preset: unet2d-tiny, seed: 1}}
  - {{preset: unet2d-tiny, override: {slow}}}
"""
SLOW = '{"num_res_blocks": 2}'
STEP = "sample_step"


def run_suite(out: Path, rounds: int, slow: str) -> float:
    suite = out / "compare-fpr.yaml"
    suite.write_text(SUITE.format(rounds=rounds, slow=slow))
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(out / "results"), "--quiet"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def load_runs(out: Path) -> list[dict]:
    """role ("base", "twin", "slow") -> timing entry, for each complete run, oldest first."""
    runs = []
    for run_dir in sorted((out / "results" / "compare-fpr").glob("*")):
        recs = list(records.read_records(run_dir).values())
        if recs and all(r.get("status") == "ok" for r in recs):
            runs.append({_role(r["case"]): r["timing"][STEP] for r in recs})
    return runs


def _role(case: dict) -> str:
    return "slow" if case.get("overrides") else "twin" if case.get("seed") else "base"


def score(runs, metric: str, threshold: float, alpha: float) -> dict:
    def verdicts(pairs):
        return [compare.compare_steps(a, b, threshold, alpha, metric) for a, b in pairs]

    def flagged(rows, what=("regression", "improvement")):
        return sum(v["verdict"] in what for v in rows)

    pairs = list(itertools.combinations(range(len(runs)), 2))
    between = verdicts((runs[i][c], runs[j][c]) for i, j in pairs for c in runs[i] if c in runs[j])
    within = verdicts((r["base"], r["twin"]) for r in runs if "twin" in r)
    slow = verdicts((runs[i]["base"], runs[j]["slow"]) for i, j in itertools.product(range(len(runs)), repeat=2) if i != j)
    slow_within = verdicts((r["base"], r["slow"]) for r in runs)
    rate = lambda n, rows: n / len(rows) if rows else None  # noqa: E731
    # compare --control: base divided by its twin round by round (and the twin by base), the slow case by the twin
    ctl = {"base": "twin", "twin": "base", "slow": "twin"}

    def controlled(i, j, c, d=None):
        return compare.compare_steps(runs[i][c], runs[j][d or c], threshold, alpha, metric,
                                     (runs[i][ctl[c]], runs[j][ctl[d or c]]))
    c_between = [controlled(i, j, c) for i, j in pairs for c in ("base", "twin") if "twin" in runs[i] and "twin" in runs[j]]
    c_slow = [controlled(i, j, "base", "slow") for i, j in itertools.product(range(len(runs)), repeat=2)
              if i != j and "twin" in runs[i] and "twin" in runs[j]]
    return {"metric": metric, "between": len(between), "between_flagged": flagged(between),
            "between_rate": rate(flagged(between), between), "within": len(within), "within_flagged": flagged(within),
            "within_rate": rate(flagged(within), within), "inconclusive": flagged(between + within, ("inconclusive",)),
            "identical_ratios_between": [round(v["ratio"], 3) for v in between],
            "identical_ratios_within": [round(v["ratio"], 3) for v in within],
            "slow": len(slow), "power": rate(flagged(slow, ("regression",)), slow),
            "slow_within": len(slow_within), "power_within": rate(flagged(slow_within, ("regression",)), slow_within),
            "slow_ratios": [round(v["ratio"], 3) for v in slow + slow_within],
            "controlled": {"between": len(c_between), "between_flagged": flagged(c_between),
                           "identical_ratios_between": [round(v["ratio"], 3) for v in c_between if "ratio" in v],
                           "slow": len(c_slow), "power_flagged": flagged(c_slow, ("regression",)),
                           "slow_ratios": [round(v["ratio"], 3) for v in c_slow if "ratio" in v]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="new runs of the suite (default 5; 0: analyze --out only)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds per case (default {DEFAULT_ROUNDS})")
    p.add_argument("--slow", default=SLOW, help=f"the slower case's override, JSON (default {SLOW})")
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
        walls.append(run_suite(out, args.rounds, args.slow))
        loads.append(os.getloadavg())
        print(f"run {i + 1}/{args.runs}: {walls[-1]:.0f} s, load average {loads[-1][0]:.1f}", file=sys.stderr)
    runs = load_runs(out)
    found = sorted({len(t.get("rounds") or [None]) for run in runs for t in run.values()})
    result = {"out": str(out), "runs": len(runs), "rounds": found, "threshold": threshold, "alpha": alpha,
              "run_wall_s": [round(w) for w in walls], "load_1min": [round(x[0], 1) for x in loads],
              "scores": [score(runs, m, threshold, alpha) for m in compare.METRICS]}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{len(runs)} runs of {'/'.join(map(str, found))} rounds in {out}; threshold {threshold:g}, alpha {alpha:g}; "
          f"1-min load average {min(result['load_1min'])}-{max(result['load_1min'])}")
    print("| metric | false positives between runs | in one run (interleaved) | inconclusive | power between runs "
          "| power in one run | ratio slowed / base (median, range) |")
    print("|---|---|---|---|---|---|---|")

    def frac(n, total):
        return f"{n}/{total}" + (f" = {n / total:.2f}" if total else "")

    for s in result["scores"]:
        ratios = sorted(s["slow_ratios"]) or [float("nan")]
        power = round(s["power"] * s["slow"]) if s["slow"] else 0
        power_within = round(s["power_within"] * s["slow_within"]) if s["slow_within"] else 0
        print(f"| {s['metric']} | {frac(s['between_flagged'], s['between'])} | {frac(s['within_flagged'], s['within'])} "
              f"| {s['inconclusive']} | {frac(power, s['slow'])} | {frac(power_within, s['slow_within'])} "
              f"| {ratios[len(ratios) // 2]:.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")
    for s in result["scores"]:
        print(f"{s['metric']}: ratios of identical code between runs {s['identical_ratios_between']}, "
              f"in one run {s['identical_ratios_within']}")
    print("with --control (each run's base divided by its twin round by round, the twin by the base, the slowed "
          "case by the twin):")
    for s in result["scores"]:
        c = s["controlled"]
        print(f"  {s['metric']}: false positives between runs {frac(c['between_flagged'], c['between'])}, power between "
              f"runs {frac(c['power_flagged'], c['slow'])}; identical-code ratios {c['identical_ratios_between']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
