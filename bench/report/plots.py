"""The report's plots, from records alone; a plot with no data is not drawn (returns None).

Each plot function takes the records and returns (figure, caption) or None. `write_all` saves
every drawn plot as PNG and SVG. Docs: docs/reports.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, no display backend

from bench.report.columns import dig, ms_per_sample, not_converged, quality_entries, resolution, timing

HIGHER_IS_BETTER = ("is", "inception_score", "precision", "recall")


def _label(r: dict) -> str:
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


def fit_exponent(x, y) -> float:
    """b in y = a x^b, least squares on log-log axes."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def _quality_plot(records, x_of, xlabel: str, logx: bool, pareto: bool):
    metrics = list(dict.fromkeys(m for r in records for m in quality_entries(r)))
    panels = []
    for m in metrics:
        pts = [(x_of(r), quality_entries(r)[m].get("value"), r) for r in records if m in quality_entries(r)]
        pts = [(x, y, r) for x, y, r in pts if x is not None and y is not None and x > 0]
        if pts:
            panels.append((m, pts))
    if not panels:
        return None
    fig = Figure(figsize=(5 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (m, pts) in zip(axes[0], panels):
        for label in dict.fromkeys(_label(r) for _, _, r in pts):
            sel = [(x, y) for x, y, r in pts if _label(r) == label]
            ax.scatter(*zip(*sel), label=label)
        if pareto and len(pts) > 1:
            front = [pts[i] for i in pareto_front([(x, y) for x, y, _ in pts], m.lower() in HIGHER_IS_BETTER)]
            ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
        floors = [quality_entries(r)[m].get("floor") for _, _, r in pts]
        floors = [f for f in floors if f is not None]
        if floors:
            ax.axhline(float(np.median(floors)), color="grey", lw=0.8, ls=":", label="floor (real vs real)")
        ax.set_xscale("log" if logx else "linear")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(m)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, f"{', '.join(m for m, _ in panels)} vs {xlabel}" + (" (dashed: Pareto front)" if pareto else "")


def quality_vs_flops(records):
    return _quality_plot(records, lambda r: dig(r, "flops", "gflop_per_sample"), "GFLOP per sample", True, True)


def quality_vs_time(records):
    return _quality_plot(records, ms_per_sample, "wall-clock ms per sample", True, True)


def quality_vs_nfe(records):
    return _quality_plot(records, lambda r: dig(r, "flops", "nfe_per_sample"), "NFE per sample", True, False)


def _per_image_step_ms(r: dict):
    t, batch = timing(r, "sample_step"), dig(r, "case", "batch")
    return None if t is None or not batch else t["median_ms"] / batch


def resolution_series(records):
    """{"GFLOP/img": {arch: [(res, value, reliable)]}, "sample ms/img": {arch/backend: [...]}} with
    only the series that span two resolutions or more."""
    series = {"GFLOP per image (1 NFE)": {}, "sample-step ms per image (1 step)": {}}
    for r in records:
        res = resolution(r)
        if res is None or r.get("status") != "ok":
            continue
        g = dig(r, "flops", "gflop_per_image")
        if g and g > 0:  # log-log fit: a zero or negative value (a damaged record) has no place on it
            series["GFLOP per image (1 NFE)"].setdefault(str(dig(r, "case", "arch")), {})[res] = (g, True)
        ms = _per_image_step_ms(r)
        if ms and ms > 0:
            series["sample-step ms per image (1 step)"].setdefault(_label(r), {})[res] = (ms, not not_converged(r, "sample_step"))
    return {panel: {k: sorted((res, v, ok) for res, (v, ok) in pts.items()) for k, pts in s.items() if len(pts) >= 2}
            for panel, s in series.items()}


def exponents(records) -> dict[str, dict[str, float]]:
    """panel -> series -> fitted exponent b of cost ~ resolution^b."""
    return {panel: {k: fit_exponent([p[0] for p in pts], [p[1] for p in pts]) for k, pts in s.items()}
            for panel, s in resolution_series(records).items() if s}


def cost_vs_resolution(records):
    panels = {p: s for p, s in resolution_series(records).items() if s}
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (panel, s) in zip(axes[0], panels.items()):
        for name, pts in s.items():
            res, val, ok = zip(*pts)
            b = fit_exponent(res, val)
            line, = ax.plot(res, val, "-", lw=1, label=f"{name}: ∝ res^{b:.2f}")
            ax.scatter([x for x, k in zip(res, ok) if k], [y for y, k in zip(val, ok) if k], color=line.get_color())
            bad = [(x, y) for x, y, k in zip(res, val, ok) if not k]
            if bad:
                ax.scatter(*zip(*bad), facecolors="none", edgecolors=line.get_color(), s=60)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("resolution (px)")
        ax.set_ylabel(panel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, "cost vs resolution, log-log, with the fitted exponent per series (hollow: timing did not converge)"


def backend_pairs(records) -> list[tuple[str, dict, dict]]:
    """(label, torch record, jax record) for cases run identically on both backends."""
    def key(r):
        c = r.get("case") or {}
        return (c.get("arch"), c.get("preset"), str(c.get("overrides")), c.get("device"), c.get("batch"),
                dig(r, "case", "precision"))
    by = {}
    for r in records:
        if r.get("status") == "ok":
            by.setdefault(key(r), {})[dig(r, "case", "backend")] = r
    return [(f"{k[1]} b{k[4]}", d["torch"], d["jax"]) for k, d in by.items() if "torch" in d and "jax" in d]


def backend_step_time(records):
    pairs = backend_pairs(records)
    steps = [s for s in ("sample_step", "train_step")
             if any(timing(t, s) and timing(j, s) for _, t, j in pairs)]
    if not steps:
        return None
    fig = Figure(figsize=(max(5, 1.6 * len(pairs)) * len(steps) / 1.3, 4))
    axes = fig.subplots(1, len(steps), squeeze=False)
    for ax, step in zip(axes[0], steps):
        rows = [(label, timing(t, step), timing(j, step)) for label, t, j in pairs if timing(t, step) and timing(j, step)]
        x = np.arange(len(rows))
        for off, idx, name in ((-0.2, 1, "PyTorch"), (0.2, 2, "JAX")):
            med = np.array([r[idx]["median_ms"] for r in rows])
            ci = np.array([r[idx].get("ci95_ms") or [m, m] for r, m in zip(rows, med)], float)
            err = np.clip([med - ci[:, 0], ci[:, 1] - med], 0, None)  # an edited record's CI may miss its median
            bars = ax.bar(x + off, med, 0.4, yerr=err, capsize=3, label=name)
            for bar, r in zip(bars, rows):
                if r[idx].get("stop_reason") != "converged":
                    bar.set_hatch("//")
        ax.set_xticks(x, [r[0] for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(f"{step.replace('_', ' ')} ms (median, 95% CI)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ("PyTorch vs JAX step time per architecture (same preset, batch and device; "
                 "hatched: timing did not converge)")


PLOTS = {
    "quality_vs_flops": quality_vs_flops,
    "quality_vs_time": quality_vs_time,
    "quality_vs_nfe": quality_vs_nfe,
    "cost_vs_resolution": cost_vs_resolution,
    "backend_step_time": backend_step_time,
}


def write_all(records, out_dir: Path) -> list[dict]:
    """Draw every plot that has data; save NAME.png and NAME.svg; return [{name, caption, png, svg}]."""
    written = []
    for name, plot in PLOTS.items():
        drawn = plot(records)
        if drawn is None:
            continue
        fig, caption = drawn
        png, svg = Path(out_dir) / f"{name}.png", Path(out_dir) / f"{name}.svg"
        fig.savefig(png, dpi=120, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})
        written.append({"name": name, "caption": caption, "png": png, "svg": svg})
    return written
