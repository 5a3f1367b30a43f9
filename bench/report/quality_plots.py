"""The report's quality plots: each metric vs sampling GFLOPs, wall-clock and NFE per sample (at
what each case really sampled with), and vs training GFLOPs (one curve per model), with 95%
bootstrap CI bars. Each returns (figure, caption) or None without data. Docs: docs/reports.md.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.report.columns import dig, gflop_sample, ms_per_sample, nfe_sample, quality_entries
from bench.report.quality_columns import HIGHER_IS_BETTER, train_gflop


def model_label(r: dict) -> str:
    return f"{dig(r, 'case', 'arch')}/{dig(r, 'case', 'backend')}"


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = False) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and quality; sorted by cost."""
    sign = -1.0 if higher_is_better else 1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], sign * points[i][1]))
    front, best = [], float("inf")
    for i in order:
        q = sign * points[i][1]
        if q < best:
            front.append(i)
            best = q
    return front


def plain_log_ticks(axis) -> None:
    """A log axis whose ticks read as plain numbers at 1, 2 and 5 x 10^k (no overlapping minor labels)."""
    axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _yerr(entries: list[dict], ys) -> np.ndarray | None:
    """Asymmetric error bars from each entry's `ci95` (zero where an entry has none)."""
    ci = [e.get("ci95") if isinstance(e.get("ci95"), (list, tuple)) else None for e in entries]
    if not any(ci):
        return None
    return np.array([[y - c[0], c[1] - y] if c else [0.0, 0.0] for y, c in zip(ys, ci)]).T.clip(0)


def _quality_plot(records, x_of, xlabel: str, logx: bool, pareto: bool, label_of=model_label, lines: bool = False):
    """One panel per metric; points grouped into series by `label_of`, joined in x order when `lines`."""
    metrics = list(dict.fromkeys(m for r in records for m in quality_entries(r)))
    panels = []
    for m in metrics:
        pts = [(x_of(r), quality_entries(r)[m].get("value"), r) for r in records if m in quality_entries(r)]
        pts = [(x, y, r) for x, y, r in pts if x is not None and y is not None and (x > 0 or not logx)]
        if pts:
            panels.append((m, pts))
    if not panels:
        return None
    fig = Figure(figsize=(5 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (m, pts) in zip(axes[0], panels):
        for label in dict.fromkeys(label_of(r) for _, _, r in pts):
            sel = sorted(((x, y, quality_entries(r)[m]) for x, y, r in pts if label_of(r) == label), key=lambda p: p[0])
            xs, ys, entries = zip(*sel)
            ax.errorbar(xs, ys, yerr=_yerr(list(entries), ys), fmt="o-" if lines else "o", capsize=3, label=label)
        if pareto and len(pts) > 1:
            front = [pts[i] for i in pareto_front([(x, y) for x, y, _ in pts], m.lower() in HIGHER_IS_BETTER)]
            ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
        floors = [quality_entries(r)[m].get("floor") for _, _, r in pts]
        floors = [f for f in floors if f is not None]
        if floors:
            ax.axhline(float(np.median(floors)), color="grey", lw=0.8, ls=":", label="floor (real vs real)")
        if logx:
            plain_log_ticks(ax.xaxis)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(m)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, f"{', '.join(m for m, _ in panels)} vs {xlabel}" + (" (dashed: Pareto front)" if pareto else "")


def quality_vs_flops(records):
    return _quality_plot(records, gflop_sample, "sampling GFLOP per sample", True, True)


def quality_vs_time(records):
    return _quality_plot(records, ms_per_sample, "wall-clock ms per sample", True, True)


def _model_preset_label(r: dict) -> str:
    """Architecture (hence process family), preset and backend: one curve per model against NFE."""
    return f"{dig(r, 'case', 'arch')}:{dig(r, 'case', 'preset')}/{dig(r, 'case', 'backend')}"


def quality_vs_nfe(records):
    return _quality_plot(records, nfe_sample, "NFE per sample", True, False, label_of=_model_preset_label, lines=True)


def _curve_label(r: dict, records) -> str:
    """arch/backend, plus the preset and NFE when they tell curves apart."""
    same = [o for o in records if model_label(o) == model_label(r)]
    parts = [model_label(r)]
    if len({dig(o, "case", "preset") for o in same}) > 1:
        parts.append(str(dig(r, "case", "preset")))
    if len({nfe_sample(o) for o in same}) > 1:
        parts.append(f"NFE {nfe_sample(r)}")
    if not isinstance(r.get("train"), dict):
        parts.append("(initial weights)")
    return " ".join(parts)


def training_curves(records, metric: str) -> list[tuple[str, list[tuple[float, float, dict]]]]:
    """(label, [(training GFLOPs, value, metric entry)]) per model: the learning-curve points of its
    `train` measurement, then its final score; an untrained model is one point at 0."""
    out = []
    for r in records:
        final, x_end = quality_entries(r).get(metric), train_gflop(r)
        if final is None or final.get("value") is None or x_end is None:
            continue
        pts = []
        for p in dig(r, "train", "quality_curve") or []:
            e = next((e for e in p.get("metrics") or [] if e.get("metric") == metric), None)
            if e is not None and e.get("value") is not None and p.get("train_gflop") is not None:
                pts.append((p["train_gflop"], e["value"], e))
        out.append((_curve_label(r, records), pts + [(x_end, final["value"], final)]))
    return out


def quality_vs_train_flops(records):
    metrics = list(dict.fromkeys(m for r in records for m in quality_entries(r)))
    panels = [(m, c) for m in metrics for c in [training_curves(records, m)] if c and any(x > 0 for _, p in c
                                                                                          for x, _, _ in p)]
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (m, curves) in zip(axes[0], panels):
        for label, pts in curves:
            xs, ys, entries = zip(*pts)
            ax.errorbar(xs, ys, yerr=_yerr(list(entries), ys), fmt="o-" if len(pts) > 1 else "s", capsize=3,
                        label=label, lw=1)
        floors = [e.get("floor") for _, pts in curves for _, _, e in pts if e.get("floor") is not None]
        if floors:
            ax.axhline(float(np.median(floors)), color="grey", lw=0.8, ls=":", label="floor (real vs real)")
        ax.set_xlabel("training GFLOP spent (0: the seeded initialization)")
        ax.set_ylabel(m)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, (f"{', '.join(m for m, _ in panels)} vs training GFLOP: one curve per model (learning-curve points "
                 "of its `train` measurement, then its final score), 95% bootstrap CI bars")
