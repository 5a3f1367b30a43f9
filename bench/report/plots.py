"""The report's plots, from records alone; a plot with no data is not drawn (returns None).

Each plot function takes the records and returns (figure, caption) or None. `write_all` saves
every drawn plot as PNG and SVG. Docs: docs/reports.md.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global figure state, no display backend
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.report.columns import RESOLUTION_KEYS, dig, not_converged, resolution, timing
from bench.report.quality_plots import (pareto_front, plain_log_ticks,  # noqa: F401 (pareto_front: re-exported)
                                        quality_vs_flops, quality_vs_nfe, quality_vs_time, quality_vs_train_flops)


def fit_exponent(x, y) -> float:
    """b in y = a x^b, least squares on log-log axes."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def _per_image_step_ms(r: dict):
    t, batch = timing(r, "sample_step"), dig(r, "case", "batch")
    return None if t is None or not batch else t["median_ms"] / batch


def _without_resolution(node):
    """The config with every resolution field removed (nested ones too): what must be equal for
    two cases to be one model at two resolutions."""
    if isinstance(node, dict):
        return {k: _without_resolution(v) for k, v in node.items() if k not in RESOLUTION_KEYS}
    if isinstance(node, list):
        return [_without_resolution(v) for v in node]
    return node


def model_key(r: dict) -> tuple[str, str]:
    import json

    return str(dig(r, "case", "arch")), json.dumps(_without_resolution(r.get("config") or {}), sort_keys=True,
                                                   default=str)


def _series_names(records) -> dict[tuple, str]:
    """model_key -> its label: the architecture, or arch/preset(s) when the architecture has
    several models (configs that differ in more than the resolution)."""
    presets: dict[tuple, list] = {}
    for r in records:
        presets.setdefault(model_key(r), []).append(str(dig(r, "case", "preset")))
    per_arch: dict[str, int] = {}
    for arch, _ in presets:
        per_arch[arch] = per_arch.get(arch, 0) + 1
    return {k: k[0] if per_arch[k[0]] == 1 else f"{k[0]}/{'+'.join(dict.fromkeys(p))}" for k, p in presets.items()}


def resolution_series(records):
    """{"GFLOP/img": {model: [(res, value, reliable)]}, "sample ms/img": {model/backend: [...]}}
    with only the series that span two resolutions or more. A series is one architecture with one
    config apart from the resolution (never two presets fitted as if one model)."""
    series = {"GFLOP per image (1 NFE)": {}, "sample-step ms per image (1 step)": {}}
    ok = [r for r in records if r.get("status") == "ok" and resolution(r) is not None]
    names = _series_names(ok)
    for r in ok:
        res, name = resolution(r), names[model_key(r)]
        g = dig(r, "flops", "gflop_per_image")
        if g and g > 0:  # log-log fit: a zero or negative value (a damaged record) has no place on it
            series["GFLOP per image (1 NFE)"].setdefault(name, {})[res] = (g, True)
        ms = _per_image_step_ms(r)
        if ms and ms > 0:
            key = f"{name}/{dig(r, 'case', 'backend')}"
            series["sample-step ms per image (1 step)"].setdefault(key, {})[res] = (ms, not not_converged(r, "sample_step"))
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
        ax.set_xticks(sorted({p[0] for pts in s.values() for p in pts}))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        plain_log_ticks(ax.yaxis)
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
        _readable_y(ax, [v for r in rows for v in (r[1]["median_ms"], r[2]["median_ms"])])
        ax.set_ylabel(f"{step.replace('_', ' ')} ms (median, 95% CI)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, ("PyTorch vs JAX step time per architecture (same preset, batch and device; "
                 "hatched: timing did not converge)")


def _readable_y(ax, values) -> None:
    """Linear when the values span less than 30x; else log with plain-number ticks at 1, 2, 5 x 10^k."""
    values = [v for v in values if v and v > 0]
    if not values or max(values) / min(values) < 30:
        ax.set_ylim(bottom=0)
        return
    plain_log_ticks(ax.yaxis)


PLOTS = {
    "quality_vs_flops": quality_vs_flops,
    "quality_vs_time": quality_vs_time,
    "quality_vs_nfe": quality_vs_nfe,
    "quality_vs_train_flops": quality_vs_train_flops,
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
        with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: searchable, editable
            fig.savefig(svg, metadata={"Date": None})
        written.append({"name": name, "caption": caption, "png": png, "svg": svg})
    return written
