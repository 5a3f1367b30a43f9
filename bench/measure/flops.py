"""FLOP records: the analytic headline, traced cross-checks (each in its own process), the
training step (counted) and the per-sample cost. Fields and units: docs/records.md.

Convention (the headline and every "value" below): GFLOP = 2 x multiply-accumulates over
matmuls, convolutions (all kernel taps) and attention QK^T and AV, per forward pass (one NFE).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.measure.count_job import CountJob, resolve, run_counter

CONVENTION = ("2 x multiply-accumulates over matmuls, convolutions (all kernel taps) and attention (QK^T, AV); "
              "bias adds, norms, activations, softmax and other elementwise ops excluded")
TOLERANCE = 0.02  # traced counts aligned to CONVENTION must agree with the analytic one this closely
COUNTERS = {"torch": ("bench.measure.fvcore_count", "bench.measure.torch_count"), "jax": ("bench.measure.xla_count",)}
_FVCORE = ("fvcore counts 1 per MAC; value = 2 x its MACs, with handles added for scaled_dot_product_attention "
           "and exact einsum and its norm/upsample/pool handles removed")
_XLA = ("XLA: 2 per MAC plus elementwise ops (transcendentals apart), convolutions count only non-padded taps; "
        "aligned_value: 2 x MACs of the dot/convolution instructions of the same optimized HLO, all taps")


def analytic(entry, config, batch: int) -> dict:
    """The entry's `forward_macs(config, batch)`: MACs keyed by module type."""
    macs = {key: int(value) for key, value in entry.load_flops()(config, batch).items()}
    return {"method": f"analytic ({entry.flops})", "macs": sum(macs.values()), "breakdown_macs": macs}


def nfe_per_sample(config, process: str) -> int:
    """Network evaluations to generate one sample, as the entry's process family (`entry.process`)
    counts them (gaussian: steps x (2 with classifier-free guidance); phase space: steps)."""
    from architectures import registry
    from bench.backends import framework_free as host

    return registry.process_class(process)(config.process).nfe_per_sample(host.conditional(config))


def _entry(method, version, convention, gflop, reference, **extra) -> dict:
    ratio = None if gflop is None or not reference else gflop / reference
    return {"method": method, "version": version, "convention": convention, "unit": "GFLOP", "value": gflop,
            "ratio_to_analytic": ratio, "error": None, **extra}


def _failed(method: str, error: str) -> dict:
    return {"method": method, "version": None, "convention": None, "unit": "GFLOP", "value": None,
            "ratio_to_analytic": None, "error": error}


def _agrees(value, reference) -> bool | None:
    return None if value is None else abs(value / reference - 1.0) <= TOLERANCE


def counter_entries(raw: dict, reference_gflop: float) -> dict:
    """Counter outputs (module -> child JSON) -> the record's `counters` (name -> entry)."""
    out, ref = {}, reference_gflop
    for module, r in raw.items():
        name = module.rsplit(".", 1)[-1]
        if r.get("error"):
            for counter in {"fvcore_count": ["fvcore"], "torch_count": ["torch_flop_counter"],
                            "xla_count": ["xla", "jaxpr"]}[name]:
                out[counter] = _failed(module, r["error"])
            continue
        fwd = r["forward"]
        if name == "fvcore_count":
            g = fwd["flops"] / 1e9
            out["fvcore"] = _entry(r["method"], r["version"], _FVCORE, g, ref, agrees=_agrees(g, ref),
                                   raw_mac=fwd["macs"], breakdown_gflop=_g(fwd["by_operator"], 2),
                                   skipped_ops=r["skipped_ops"], traced_batch=r["traced_batch"])
        elif name == "torch_count":
            g = fwd["flops"] / 1e9
            out["torch_flop_counter"] = _entry(r["method"], r["version"], "2 per MAC, matmuls and convolutions", g,
                                               ref, agrees=_agrees(g, ref), breakdown_gflop=_g(fwd["by_operator"]))
        else:
            out.update(_jax_entries(r, ref))
    return out


def _jax_entries(r: dict, ref: float) -> dict:
    fwd = r["forward"]
    aligned = fwd.get("xla_dot_conv_flops")
    aligned = None if aligned is None else aligned / 1e9
    xla = _entry(r["method"], r["version"], _XLA, fwd["xla_flops"] / 1e9, ref, aligned_value=aligned,
                 aligned_ratio=None if aligned is None else aligned / ref, agrees=_agrees(aligned, ref),
                 stage=fwd["xla_stage"], platform=r["platform"], aligned_error=fwd.get("xla_dot_conv_error"))
    g = fwd["jaxpr_flops"] / 1e9
    jaxpr = _entry("jaxpr walk (dot_general, conv_general_dilated)", r["version"], "2 per MAC, all kernel taps", g,
                   ref, agrees=_agrees(g, ref), breakdown_gflop=_g(fwd["jaxpr_by_primitive"]))
    return {"xla": xla, "jaxpr": jaxpr}


def _g(counts: dict, factor: int = 1) -> dict:
    return {k: factor * v / 1e9 for k, v in counts.items()}


def train_record(raw: dict, forward_gflop: float, batch: int) -> dict:
    """FLOPs of one training step, counted (never assumed 3x): loss with the process's extra
    forward passes + backward (the optimizer update has no matmuls)."""
    sources = {"torch_flop_counter": raw.get("bench.measure.torch_count"), "jaxpr": raw.get("bench.measure.xla_count")}
    train = {name: r.get("train", {"error": r.get("error", "not counted")}) for name, r in sources.items() if r}
    counted = {name: t for name, t in train.items() if not t.get("error")}
    if not counted:
        errors = "; ".join(f"{n}: {t['error']}" for n, t in train.items()) or "no training-step counter ran"
        return {"gflop": None, "error": errors}
    name, t = next(iter(counted.items()))
    g = (t["flops"] if name == "torch_flop_counter" else t["jaxpr_flops"]) / 1e9
    out = {"gflop": g, "gflop_per_image": g / batch, "method": name, "convention": CONVENTION,
           "forward_passes": t["forward_passes"], "ratio_to_forward": g / forward_gflop, "error": None,
           "failed": {n: t["error"] for n, t in train.items() if t.get("error")}}
    if "jaxpr" in counted:
        j = counted["jaxpr"]
        out.update(jaxpr_gflop=j["jaxpr_flops"] / 1e9, xla_gflop=j["xla_flops"] / 1e9, xla_stage=j["xla_stage"])
    return out


def flops_record(entry, config, batch: int, counters: tuple[str, ...], seed: int = 0, timeout_s: float = 300.0,
                 plugins: tuple = (), overrides: dict | None = None, preset: str = "") -> dict:
    """The record's `flops` field; `counters` are counter modules, each run in its own process."""
    a = analytic(entry, config, batch)
    gmac = a["macs"] / 1e9
    job = CountJob(entry.name, preset, dict(overrides or {}), batch, seed, tuple(plugins), train=True)
    with ThreadPoolExecutor(max(1, len(counters))) as pool:  # separate processes, side by side
        raw = dict(zip(counters, pool.map(lambda module: run_counter(module, job, timeout_s), counters)))
    counters_out = counter_entries(raw, 2 * gmac)
    nfe = nfe_per_sample(config, entry.process)
    return {
        "convention": CONVENTION, "batch": batch, "analytic": a["method"],
        "gflop": 2 * gmac, "gmac": gmac, "gflop_per_image": 2 * gmac / batch, "gmac_per_image": gmac / batch,
        "breakdown_gmac": {k: v / 1e9 for k, v in a["breakdown_macs"].items()},
        "nfe_per_sample": nfe, "gflop_per_sample": nfe * 2 * gmac / batch,
        "train_step": train_record(raw, 2 * gmac, batch),
        "counters": counters_out,
        "agreement": agreement(counters_out),
        "params_counted": {m.rsplit(".", 1)[-1]: r["params"] for m, r in raw.items() if "params" in r},
    }


def agreement(counters: dict) -> dict:
    """Counters whose conventions-aligned value is off the analytic one by more than TOLERANCE."""
    off = {n: c.get("aligned_ratio", c["ratio_to_analytic"]) for n, c in counters.items() if c.get("agrees") is False}
    return {"tolerance": TOLERANCE, "ok": not off, "disagreeing": off,
            "checked": sorted(n for n, c in counters.items() if c.get("agrees") is not None)}


def flops_report(arch: str, preset: str, backend: str | None = None, batch: int = 1, overrides: dict | None = None,
                 timeout_s: float = 300.0) -> dict:
    """`diffbench flops`: params, GFLOP, GMAC, breakdown and one entry per counter (JSON-ready)."""
    job = CountJob(arch, preset, dict(overrides or {}), batch)
    entry, config = resolve(job)
    backends = [backend] if backend else [b for b in ("torch", "jax") if b in entry.backends]
    counters = tuple(m for b in backends for m in COUNTERS[b])
    rec = flops_record(entry, config, batch, counters, timeout_s=timeout_s, overrides=overrides, preset=preset)
    params = rec["params_counted"]
    return {"arch": arch, "preset": preset, "backends": backends, "params": next(iter(params.values()), None),
            "params_agree": len(set(params.values())) <= 1, **rec}


def analytic_report(arch: str, preset: str, batch: int = 1, overrides: dict | None = None) -> dict:
    """`diffbench flops --analytic-only`: the analytic count alone (no model built, no counter run)."""
    entry, config = resolve(CountJob(arch, preset, dict(overrides or {}), batch))
    a = analytic(entry, config, batch)
    gmac, nfe = a["macs"] / 1e9, nfe_per_sample(config, entry.process)
    out = {"arch": arch, "preset": preset, "batch": batch, "analytic": a["method"], "convention": CONVENTION,
           "gflop": 2 * gmac, "gmac": gmac, "gflop_per_image": 2 * gmac / batch, "nfe_per_sample": nfe,
           "gflop_per_sample": nfe * 2 * gmac / batch, "breakdown_gmac": {k: v / 1e9 for k, v in a["breakdown_macs"].items()}}
    out["lines"] = [f"{arch} / {preset}   batch {batch}   (analytic only; params and traced counters not run)",
                    f"forward (1 NFE): {out['gflop']:.4g} GFLOP = 2 x {gmac:.4g} GMAC; per image "
                    f"{out['gflop_per_image']:.4g} GFLOP   [{a['method']}]",
                    "breakdown (GMAC): " + ", ".join(f"{k} {v:.4g}" for k, v in out["breakdown_gmac"].items()),
                    f"per sample: {nfe} NFE x {out['gflop_per_image']:.4g} = {out['gflop_per_sample']:.4g} GFLOP"]
    return out


def format_flops_report(r: dict) -> str:
    """Plain-text rendering of flops_report's dict."""
    lines = [f"{r['arch']} / {r['preset']}   batch {r['batch']}   params {_num(r['params'])}"
             + ("" if r["params_agree"] else f"  (backends differ: {r['params_counted']})"),
             f"forward (1 NFE): {r['gflop']:.4g} GFLOP = 2 x {r['gmac']:.4g} GMAC;"
             f" per image {r['gflop_per_image']:.4g} GFLOP   [{r['analytic']}]",
             "breakdown (GMAC): " + ", ".join(f"{k} {v:.4g}" for k, v in r["breakdown_gmac"].items()),
             f"per sample: {r['nfe_per_sample']} NFE x {r['gflop_per_image']:.4g} = {r['gflop_per_sample']:.4g} GFLOP"]
    t = r["train_step"]
    lines.append(f"train step: {t['gflop']:.4g} GFLOP ({t['ratio_to_forward']:.2f} x forward; {t['forward_passes']} "
                 f"forward pass(es) + backward; counted by {t['method']})" if t["gflop"] is not None
                 else f"train step: not counted ({t['error']})")
    lines.append(f"counters (agree within {100 * TOLERANCE:.0f}% once aligned?):")
    for name, c in r["counters"].items():
        if c["error"]:
            lines.append(f"  {name:<19} FAILED: {c['error'][:160]}")
            continue
        shown = c.get("aligned_value", c["value"])
        extra = f"   (XLA total {c['value']:.4g}, x{c['ratio_to_analytic']:.3f})" if name == "xla" else ""
        lines.append(f"  {name:<19} {_gf(shown)} GFLOP  {_verdict(c.get('agrees'))}{extra}")
    if not r["agreement"]["ok"]:
        lines.append(f"  DISAGREEMENT beyond {100 * TOLERANCE:.0f}%: {r['agreement']['disagreeing']}")
    lines.append(f"convention: {r['convention']}")
    return "\n".join(lines)


def _gf(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _verdict(agrees) -> str:
    return {True: "agrees", False: "DISAGREES", None: "not compared"}[agrees]


def _num(n) -> str:
    return "?" if n is None else f"{n:,}"
