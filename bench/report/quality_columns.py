"""Quality columns: each metric's value with its bootstrap CI, N, feature space, floor and whether
it is distinguishable from the best comparable score; and what produced a score (weights,
training steps, GFLOPs and wall time, sampler and steps, N). Docs: docs/reports.md.
"""

from __future__ import annotations

from bench.report.columns import Column, dig, quality_entries, resolution

HIGHER_IS_BETTER = ("is", "inception_score", "precision", "recall")


def ci_pair(value):
    """A (lo, hi) CI from a record's two-item list, None when it is missing or incomplete."""
    return tuple(value) if isinstance(value, (list, tuple)) and len(value) == 2 and None not in value else None


def weights(record: dict):
    """initial | trained | trained (EMA) | checkpoint+trained | checkpoint: what was sampled."""
    train = record.get("train")
    if isinstance(train, dict):
        kind = "trained (EMA)" if train.get("weights_after") == "ema" else "trained"
        return f"checkpoint+{kind}" if train.get("init") else kind
    w = dig(record, "quality", "weights")
    if w is None:
        return None
    return "initial" if w == "initial" else "checkpoint"


def sampler(record: dict):
    """The sampler and the steps it took, e.g. `ddim 20`."""
    steps = dig(record, "quality", "sampling", "steps")
    if steps is None:
        return None
    name = dig(record, "config", "process", "sampler") or dig(record, "config", "process", "integrator")
    return f"{name} {steps}" if name else f"{steps} steps"


def train_gflop(record: dict):
    """Training GFLOPs spent by the case's `train` measurement (0 for sampled-but-untrained weights)."""
    spent = dig(record, "train", "gflop_spent")
    if spent is not None:
        return spent
    return 0.0 if dig(record, "quality", "weights") == "initial" else None


def provenance_columns() -> list[Column]:
    return [
        Column("weights", "weights", weights, kind="label"),
        Column("train_steps", "train steps", lambda r: dig(r, "train", "steps"), "{}"),
        Column("train_gflop", "train GFLOP", train_gflop, "sig3"),
        Column("train_s", "train s", lambda r: dig(r, "train", "duration_s"), "sig3"),
        Column("sampler", "sampler", sampler, kind="label"),
        Column("quality_n", "N", lambda r: dig(r, "quality", "sampling", "n"), "{}"),
    ]


def comparable_key(record: dict, metric: str) -> tuple:
    """Scores are compared only against the same reference set: metric, feature space, dataset,
    N, seed, resolution and frames."""
    e = quality_entries(record).get(metric, {})
    return (metric, e.get("feature_space"), dig(record, "quality", "settings", "dataset"),
            dig(record, "quality", "settings", "root"), e.get("n"), dig(record, "case", "seed"),
            resolution(record), dig(record, "config", "frames"))


def versus_best(records, metric: str) -> dict[int, str]:
    """id(record) -> `best`, `≈ best` (the paired-bootstrap 95% CI of the difference holds 0) or
    `worse`, within each group of comparable scores with two or more members."""
    from bench.quality.uncertainty import difference

    higher = metric.lower() in HIGHER_IS_BETTER
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if quality_entries(r).get(metric, {}).get("value") is not None:
            groups.setdefault(comparable_key(r, metric), []).append(r)
    out = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        value = lambda r: quality_entries(r)[metric]["value"]  # noqa: E731
        best = (max if higher else min)(members, key=value)
        for r in members:
            if r is best:
                out[id(r)] = "best"
                continue
            a, b = quality_entries(r)[metric], quality_entries(best)[metric]
            reps_a, reps_b = dig(a, "bootstrap", "replicates"), dig(b, "bootstrap", "replicates")
            if reps_a and reps_b and len(reps_a) == len(reps_b):
                same = not difference(a["value"], reps_a, b["value"], reps_b)["distinguishable"]
            elif ci_pair(a.get("ci95")) and ci_pair(b.get("ci95")):  # no replicates: do the two CIs overlap?
                (lo_a, hi_a), (lo_b, hi_b) = a["ci95"], b["ci95"]
                same = lo_a <= hi_b and lo_b <= hi_a
            else:
                continue
            out[id(r)] = "≈ best" if same else "worse"
    return out


def metric_columns(records) -> list[Column]:
    metrics = dict.fromkeys(m for r in records for m in quality_entries(r))
    out = []
    for m in metrics:
        def field(key, metric=m):
            return lambda r: quality_entries(r).get(metric, {}).get(key)

        def ci(key, metric=m):
            return lambda r: ci_pair(quality_entries(r).get(metric, {}).get(key))
        verdicts = versus_best(records, m)
        out += [Column(f"quality.{m}", m, field("value"), "sig4", ci=ci("ci95")),
                Column(f"quality.{m}.vs_best", f"{m} vs best", lambda r, v=verdicts: v.get(id(r)), kind="label"),
                Column(f"quality.{m}.n", f"{m} N", field("n"), "{}"),
                Column(f"quality.{m}.feature_space", f"{m} features", field("feature_space"), kind="label"),
                Column(f"quality.{m}.floor", f"{m} floor", field("floor"), "sig4", ci=ci("floor_ci95"))]
    return out
