"""What each utilization switch gives on one GPU, one at a time (docs/precision.md, "Utilization
switches"): DiT-XL/2, ADM ImageNet-64 and RIN ImageNet-64 at batch 64 in bf16, each switch against
its backend's baseline, every variant a case of its own (a fresh process, the harness's timing
protocol, MFU against the datasheet peak). Switches are case settings, so each record says which
one was on.

    .venv/bin/python benchmarks/utilization_switches.py [--models dit-xl-2,...] [--batch 64]
                                                        [--out FILE.md] [--dry-run]

--dry-run prints the cases without running them (any machine). Without a CUDA device the script
stops with a one-line message (exit 2): these numbers only mean something on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODELS = ("dit-xl-2", "adm-imagenet64", "rin-imagenet64")
UNETS = ("adm-imagenet64",)  # channels_last applies to the conv nets
BOTH, SAMPLE = ("sample_step", "train_step"), ("sample_step",)
# (label, backend, settings, measure, only for these presets or None)
SWITCHES = (
    ("baseline: eager, SDPA auto", "torch", {}, BOTH, None),
    ("torch.compile default", "torch", {"compile": "default"}, BOTH, None),
    ("torch.compile max-autotune", "torch", {"compile": "max-autotune"}, BOTH, None),
    ("torch.compile reduce-overhead", "torch", {"compile": "reduce-overhead"}, BOTH, None),
    ("SDPA flash", "torch", {"attention": "flash"}, BOTH, None),
    ("SDPA memory-efficient", "torch", {"attention": "efficient"}, BOTH, None),
    ("channels_last", "torch", {"memory_format": "channels_last"}, BOTH, UNETS),
    ("fused AdamW", "torch", {"fused_adamw": True}, ("train_step",), None),
    ("CUDA graphs (sampling)", "torch", {"cuda_graphs": True}, SAMPLE, None),
    ("cudnn.benchmark off", "torch", {"cudnn_benchmark": False}, BOTH, None),
    ("baseline: bf16 compute, fp32 master, whole step jitted, donated", "jax", {}, BOTH, None),
    ("no buffer donation", "jax", {"donate": False}, ("train_step",), None),
    ("bf16 parameters (bf16-pure, sampling)", "jax", {"precision": "bf16-pure"}, SAMPLE, None),
)


def suite_text(models=MODELS, batch: int = 64) -> str:
    """The suite as YAML (JSON is YAML): one case per model x switch."""
    cases = []
    for preset in models:
        for label, backend, settings, measure, only in SWITCHES:
            if only is None or preset in only:
                cases.append({"preset": preset, "backend": backend, "measure": list(measure), **settings})
    return json.dumps({"name": "utilization-switches", "description": "one switch at a time, bf16, one GPU",
                       "defaults": {"device": "cuda", "batch": batch, "precision": "bf16", "timeout": 1800},
                       "cases": cases}, indent=1)


def label(case) -> str:
    for text, backend, settings, _, _ in SWITCHES:
        if backend == case["backend"] and all(case.get(k) == v for k, v in settings.items()) and (
                settings or _is_baseline(case)):
            return text
    return "?"


def _is_baseline(case) -> bool:
    return (case.get("compile") in ("none", None) and case.get("attention") in ("auto", None)
            and case.get("memory_format") in ("contiguous", None) and not case.get("fused_adamw")
            and not case.get("cuda_graphs") and case.get("cudnn_benchmark") is None and case.get("donate", True)
            and case.get("precision") == "bf16")


def table(records) -> str:
    """Markdown: per model and backend, each switch's step times and MFU, and its speed-up on the
    baseline's training (or sampling) step."""
    def cell(rec, step, key):
        t = (rec.get("timing") or {}).get(step) or {}
        value = t.get("median_ms") if key == "ms" else (t.get("utilization") or {}).get("mfu")
        return None if value is None else float(value)

    rows = ["| model | backend | switch | train ms | train MFU | sample ms | sample MFU | vs baseline |",
            "|---|---|---|---|---|---|---|---|"]
    base = {}
    for rec in records:
        c = rec["case"]
        if label(c).startswith("baseline"):
            base[(c["preset"], c["backend"])] = rec
    for rec in records:
        c = rec["case"]
        if rec.get("status") != "ok":
            rows.append(f"| {c['preset']} | {c['backend']} | {label(c)} | failed: "
                        f"{str((rec.get('error') or {}).get('message', '?')).splitlines()[0][:80]} | | | | |")
            continue
        ref = base.get((c["preset"], c["backend"]))
        step = "train_step" if cell(rec, "train_step", "ms") else "sample_step"
        speedup = (cell(ref, step, "ms") / cell(rec, step, "ms")) if ref and cell(ref, step, "ms") else None
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        rows.append(f"| {c['preset']} | {c['backend']} | {label(c)} | {fmt(cell(rec, 'train_step', 'ms'), '.4g')} | "
                    f"{fmt(cell(rec, 'train_step', 'mfu'), '.2f')} | {fmt(cell(rec, 'sample_step', 'ms'), '.4g')} | "
                    f"{fmt(cell(rec, 'sample_step', 'mfu'), '.2f')} | "
                    f"{fmt(speedup, '.2f') + 'x ' + step.split('_')[0] if speedup else '-'} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated presets")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", help="also write the Markdown table to this file")
    parser.add_argument("--results", default="results")
    parser.add_argument("--dry-run", action="store_true", help="print the cases, run nothing")
    args = parser.parse_args(argv)
    from bench import runner, suite_file
    from bench.plan import format_plan
    from bench.strict_yaml import SpecError

    try:
        suite = suite_file.loads(suite_text(tuple(args.models.split(",")), args.batch), "utilization_switches.py")
    except SpecError as exc:
        print(f"utilization_switches: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(format_plan(suite))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("utilization_switches: no CUDA device here; these switches are measured on a GPU "
              "(--dry-run lists the cases)", file=sys.stderr)
        return 2
    from bench.records import read_records

    run_dir = runner.run_suite(suite, results_root=Path(args.results))
    records = sorted(read_records(run_dir).values(), key=lambda r: r["case"]["index"])
    text = table(records)
    print(text)
    if args.out:
        Path(args.out).write_text(f"Run {run_dir} on {torch.cuda.get_device_name()}\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
