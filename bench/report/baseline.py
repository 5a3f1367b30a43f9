"""Ratios against a baseline: each case divided by the baseline case run under the same
conditions (backend, device, precision, resolution, frames, batch). Docs: docs/reports.md.

`--baseline arch=unet2d` (or `preset=adm-imagenet64,backend=torch`, or a glob over case ids):
RIN at 64 px on torch, batch 2, is divided by the U-Net at 64 px on torch, batch 2. Time ratios
carry a percentile-bootstrap 95% CI resampling both cases' raw samples (bench.measure.stats).
"""

from __future__ import annotations

import fnmatch

import numpy as np

from bench.measure.stats import bootstrap_ratio_ci
from bench.report.columns import STATIC, Column, dig, ms_per_sample, not_converged, timing

MATCH_ON = ("backend", "device", "precision", "resolution", "frames", "batch")
_BY_NAME = {c.name: c for c in STATIC}


class BaselineError(ValueError):
    """A --baseline selector that is malformed or matches nothing; the message says which."""


def parse(selector: str) -> list[tuple[str, str]] | str:
    """`key=value,key=value` -> pairs over column names; anything without `=` is a case-id glob."""
    if "=" not in selector:
        return selector
    pairs = []
    for part in selector.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in _BY_NAME:
            raise BaselineError(f"--baseline {selector!r}: bad term {part!r}; allowed: KEY=VALUE[,KEY=VALUE] with KEY "
                                f"one of {', '.join(_BY_NAME)}, or a glob over case ids")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _matches(record: dict, sel) -> bool:
    if isinstance(sel, str):
        return fnmatch.fnmatchcase(str(record.get("case_id")), sel)
    return all(str(_BY_NAME[k].get(record)) == v for k, v in sel)


def _condition(record: dict, sel) -> tuple:
    named = {k for k, _ in sel} if not isinstance(sel, str) else set()
    return tuple(_BY_NAME[k].get(record) for k in MATCH_ON if k not in named)


def no_baseline_reason(record: dict, selector: str) -> str:
    """Why a case has no ratio: it failed, or no successful baseline case ran under its conditions."""
    if record.get("status") != "ok":
        return "none: the case failed"
    sel = parse(selector)
    named = {k for k, _ in sel} if not isinstance(sel, str) else set()
    cond = ", ".join(f"{k}={_BY_NAME[k].get(record)}" for k in MATCH_ON if k not in named)
    return f"none: no successful {selector} case with {cond}"


def key(record: dict) -> tuple:
    return str(record.get("run_id")), str(record.get("case_id"))


def pair(records: list[dict], selector: str) -> dict[tuple, dict]:
    """key(record) -> its baseline record (cases without a matching baseline are left out)."""
    sel = parse(selector)
    bases = [r for r in records if _matches(r, sel) and r.get("status") == "ok"]
    if not bases:
        raise BaselineError(f"--baseline {selector!r}: matches no successful case; allowed: a selector matching one of "
                            f"{', '.join(str(r.get('case_id')) for r in records[:8])}{' ...' if len(records) > 8 else ''}")
    by_condition = {}
    for b in bases:
        by_condition.setdefault(_condition(b, sel), b)
    return {key(r): by_condition[_condition(r, sel)] for r in records if _condition(r, sel) in by_condition}


def _samples(record: dict, step: str):
    """What the ratio's CI resamples: the round medians of a step timed in several rounds (the
    noise between processes, docs/measurement.md#rounds), else the one process's raw samples."""
    t = timing(record, step)
    rounds = None if t is None else t.get("rounds")
    if isinstance(rounds, list) and len(rounds) >= 2 and all(isinstance(r, dict) and r.get("median_ms") for r in rounds):
        return np.asarray([r["median_ms"] for r in rounds], dtype=float)
    s = None if t is None else t.get("samples_ms")
    return np.asarray(s, dtype=float) if s else None


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def columns(records: list[dict], selector: str) -> list[Column]:
    """FLOPs ratio, time ratios with CI, per-sample time ratio; `*_ratio` column names."""
    base = pair(records, selector)
    ci_cache: dict[tuple, tuple] = {}

    def b(r):
        return base.get(key(r))

    def time_ratio(step):
        def get(r):
            return None if b(r) is None else _ratio(dig(timing(r, step) or {}, "median_ms"),
                                                    dig(timing(b(r), step) or {}, "median_ms"))

        def ci(r):
            k = (key(r), step)
            if k not in ci_cache:
                x, y = (_samples(r, step), _samples(b(r), step)) if b(r) is not None else (None, None)
                ci_cache[k] = None if x is None or y is None else bootstrap_ratio_ci(x, y)
            return ci_cache[k]
        return get, ci

    def flops_ratio(r):
        return None if b(r) is None else _ratio(dig(r, "flops", "gflop_per_image"), dig(b(r), "flops", "gflop_per_image"))

    def unreliable(step):
        return lambda r: b(r) is not None and (not_converged(r, step) or not_converged(b(r), step))

    sample_get, sample_ci = time_ratio("sample_step")
    train_get, train_ci = time_ratio("train_step")

    def per_sample(r):
        return None if b(r) is None else _ratio(ms_per_sample(r), ms_per_sample(b(r)))

    def per_sample_ci(r):  # the steps-per-sample factor is exact; only the step times are uncertain
        step_ratio, ci = sample_get(r), sample_ci(r)
        value = per_sample(r)
        return None if not (ci and step_ratio and value) else (ci[0] * value / step_ratio, ci[1] * value / step_ratio)

    return [
        Column("flops_ratio", "GFLOP/img ÷ base", flops_ratio, "sig3"),
        Column("sample_ratio", "sample step ÷ base", sample_get, "sig3", ci=sample_ci, unreliable=unreliable("sample_step")),
        Column("ms_per_sample_ratio", "ms/sample ÷ base", per_sample, "sig3", ci=per_sample_ci,
               unreliable=unreliable("sample_step")),
        Column("train_ratio", "train step ÷ base", train_get, "sig3", ci=train_ci, unreliable=unreliable("train_step")),
        Column("baseline", "baseline", lambda r: no_baseline_reason(r, selector) if b(r) is None else b(r).get("case_id"),
               kind="label"),
    ]
