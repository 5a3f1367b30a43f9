"""Synthetic run directories in the record format the runner writes, for the report and compare tests."""

from __future__ import annotations

import numpy as np

from bench import records
from bench.measure.timing import TimingPolicy, timing_record


def timing_entry(samples_ms, batch: int, converged: bool = True, nfe: int = 1) -> dict:
    """One timed step; `samples_ms` a list of lists is one list per round, merged as the runner does."""
    if samples_ms and isinstance(samples_ms[0], (list, tuple)):
        from bench.rounds import merge_step

        return merge_step([timing_entry(r, batch, converged, nfe) for r in samples_ms], batch)
    samples_s = [s / 1e3 for s in samples_ms]
    return timing_record(samples_s, "converged" if converged else "max_reps", TimingPolicy(), batch, nfe=nfe,
                         device={"device": "cpu", "dtype": "float32", "name": "x86_64"})


def record(run_id: str, index: int, arch: str, preset: str, backend: str = "torch", batch: int = 2,
           overrides: dict | None = None, resolution: int = 32, gflop: float = 1.0, steps: int = 50,
           sample_ms=None, train_ms=None, converged=(True, True), status: str = "ok", quality=None,
           suite: str = "s") -> dict:
    overrides = overrides or {}
    case_id = f"{arch}/{preset}/{backend}/cpu/b{batch}" + (f"/o{index:08x}" if overrides else "")
    rec = {"schema": records.SCHEMA, "suite": suite, "run_id": run_id, "case_id": case_id, "status": status,
           "case": {"arch": arch, "preset": preset, "backend": backend, "device": "cpu", "batch": batch, "index": index,
                    "overrides": overrides, "seed": 0, "compile": False, "threads": None},
           "config": {"image_size": resolution, "frames": 0}, "worker": {"threads": 2}}
    if status != "ok":
        rec["error"] = {"type": "RuntimeError", "message": f"boom in {case_id}\nsecond line of the traceback"}
        return rec
    rec["params"] = 1_234_567
    rec["flops"] = {"gflop": gflop, "gflop_per_image": gflop / batch, "nfe_per_sample": steps,
                    "gflop_per_sample": steps * gflop / batch, "agreement": {"ok": True, "disagreeing": {}}}
    rec["timing"] = {}
    if sample_ms is not None:
        rec["timing"]["sample_step"] = timing_entry(sample_ms, batch, converged[0])
    if train_ms is not None:
        rec["timing"]["train_step"] = timing_entry(train_ms, batch, converged[1])
    rec["memory"] = {"peak_rss_bytes": 5e8, "device_peak_bytes": None}
    if quality is not None:
        rec["quality"] = quality
    return rec


def write_run(root, suite: str, run_id: str, recs: list[dict], sha: str = "0123456789abcdef") -> object:
    run = root / suite / run_id
    run.mkdir(parents=True)
    records.write_json_atomic(run / records.RUN_FILE, {
        "run_id": run_id, "suite": suite, "started": "2026-01-01T00:00:00+00:00", "suite_sha256": "ab" * 32,
        "provenance": {"git": {"sha": sha, "dirty": False}, "host": {"cpu_model": "TestCPU", "cpu_count": 2,
                                                                   "accelerators": {"nvidia": []}},
                       "versions": {"torch": "2.14.1", "jax": "0.10.2"}}})
    seen = set()
    for rec in recs:
        if rec["case_id"] in seen:  # a real run's ids differ by the settings' hashes (/q..., /tr...): so do these
            rec["case_id"] = rec["case"]["id"] = f"{rec['case_id']}/q{rec['case']['index']:08x}"
        seen.add(rec["case_id"])
        records.write_json_atomic(run / records.record_filename(rec["case"]["index"], rec["case_id"]), rec)
    return run


def lognormal_ms(rng, median: float, n: int = 30, sigma: float = 0.05) -> list[float]:
    return (median * np.exp(sigma * rng.standard_normal(n))).tolist()


def rounds_ms(rng, median: float, rounds: int = 5, n: int = 15, between: float = 0.05) -> list[list[float]]:
    """Raw samples of `rounds` processes whose own medians scatter by `between` (log sd) around `median`."""
    return [lognormal_ms(rng, median * float(np.exp(between * rng.standard_normal())), n) for _ in range(rounds)]


def fd(value: float, n: int = 500) -> list[dict]:
    """A quality section in the shape bench.quality.metrics.score returns."""
    return [{"metric": "fd-effnet", "value": value, "n": n, "feature_space": "efficientnet-lite0", "floor": 2.0}]


def scaling_run(root, run_id: str = "r1"):
    """Two families at 32 and 64 px (cost ~ res^2 and res^1) on both backends, one with quality,
    one non-converged timing, one failed case and an override with LaTeX-special characters."""
    rng = np.random.default_rng(0)
    recs, i = [], 0
    for arch, preset, power in (("rin", "rin_a", 1.0), ("unet2d", "adm_b", 2.0)):
        for res in (32, 64):
            for backend in ("torch", "jax"):
                g = 2.0 * (res / 32) ** power
                recs.append(record(run_id, i, arch, preset, backend, resolution=res, gflop=g,
                                   overrides={"image_size": res, "note": "50%_off"},
                                   sample_ms=lognormal_ms(rng, 10 * g), train_ms=lognormal_ms(rng, 30 * g),
                                   converged=(not (arch == "rin" and res == 64 and backend == "jax"), True),
                                   quality=fd(20 / g) if backend == "torch" else None))
                i += 1
    recs.append(record(run_id, i, "unet2d", "adm_b", "torch", status="failed", overrides={"image_size": 128, "note": "50%_off"}))
    return write_run(root, "s", run_id, recs)


def quality_rows(rng, fd_value: float, kid_value: float, n: int = 64, resamples: int = 200) -> list[dict]:
    """fd-effnet and kid rows as bench.quality.metrics.score writes them: value, bootstrap CI and
    replicates (spread ~5% of the value), N, feature space, floor."""
    rows = []
    for metric, value, floor in (("fd-effnet", fd_value, 22.2), ("kid", kid_value, -0.0004)):
        reps = value * (1 + 0.05 * rng.standard_normal(resamples)) + 0.02 * abs(value)
        lo, mid, hi = np.quantile(reps, [0.025, 0.5, 0.975])
        rows.append({"metric": metric, "value": value, "ci95": [value - (mid - lo), value + (hi - mid)],
                     "bootstrap": {"resamples": resamples, "seed": 0, "replicates": reps.tolist()},
                     "n": n, "n_reference": n, "feature_space": "efficientnet-lite0 pooled (proxy)", "proxy": True,
                     "floor": floor, "floor_ci95": [floor - 1.0, floor + 1.0] if metric == "fd-effnet" else
                     [floor - 0.01, floor + 0.01]})
    return rows


def quality_section(rng, fd_value, kid_value, steps: int, gflop_image: float, weights: str = "initial") -> dict:
    return {"settings": {"metrics": ["fd-effnet", "kid"], "n": 64, "steps": steps, "batch": 32, "dataset": "shapes",
                         "root": None},
            "weights": weights, "metrics": quality_rows(rng, fd_value, kid_value),
            "sampling": {"n": 64, "batch": 32, "steps": steps, "nfe_per_step": 1, "nfe": steps,
                         "gflop_per_image": gflop_image, "gflop_per_sample": steps * gflop_image},
            "reference": {"dataset": "shapes", "n": 64, "floor_n": 64}}


def train_section(steps: int, gflop_per_step: float, seconds: float, curve=()) -> dict:
    out = {"steps": steps, "batch": 16, "gflop_spent": steps * gflop_per_step, "duration_s": seconds,
           "weights_after": "trained", "init": None, "step_flops": {"flop": int(gflop_per_step * 1e9)}}
    if curve:
        out["quality_curve"] = list(curve)
    return out


def mixed_run(root, run_id: str = "m1"):
    """A mixed suite as a researcher runs it: several architectures (one with a nested config) on
    both backends with timings (one contended 2-thread case, one failed FLOP counter), a trained and
    an untrained model scored for quality, a learning curve, and a quality-vs-NFE sweep (5, 20, 50
    sampler steps). The real config field names of each family."""
    rng = np.random.default_rng(7)
    recs, i = [], 0
    configs = {"rin": ("rin-tiny", {"image_size": 16, "channels": 3, "frames": 0, "process": {"sampler": "ddim"}}, 0.012),
               "unet2d": ("unet2d-tiny", {"image_size": 16, "in_channels": 3, "frames": 0,
                                          "process": {"sampler": "ddim"}}, 0.0345),
               "dit": ("dit-tiny", {"input_size": 8, "in_channels": 4, "process": {"sampler": "ddim"}}, 0.0061),
               "nested_unet": ("mdm-tiny", {"levels": [{"resolution": 32}, {"resolution": 16}], "in_channels": 3,
                                            "process": {"resolutions": [32, 16], "sampler": "ddim"}}, 0.051)}
    for arch, (preset, config, g) in configs.items():
        for backend in ("torch", "jax"):
            rec = record(run_id, i, arch, preset, backend, gflop=2 * g, steps=50,
                         sample_ms=lognormal_ms(rng, 400 * g), train_ms=lognormal_ms(rng, 1200 * g))
            rec["config"], rec["worker"] = dict(config), {"threads": 1}
            if arch == "dit" and backend == "jax":
                rec["flops"]["counters"] = {"hlo": {"error": "XlaRuntimeError: cost analysis unavailable\nmore"}}
            if arch == "unet2d" and backend == "torch":
                rec["timing"]["sample_step"].update(contended=True, wall_over_cpu=1.9,
                                                    contention="wall/CPU 1.90 > 1.2 with 1 thread(s)")
            recs.append(rec)
            i += 1
    unet = configs["unet2d"][1]
    curve = [{"step": s, "train_gflop": s * 1.65, "wall_s": s * 0.12, "weights": "trained",
              "metrics": quality_rows(rng, 288 - s * 0.09, 0.646 - s * 0.0004)} for s in (0, 75, 150, 225)]
    for backend, trained in (("torch", True), ("jax", True), ("torch", False)):
        rec = record(run_id, i, "unet2d", "unet2d-tiny", backend, batch=16)
        rec["config"] = dict(unet)
        del rec["timing"], rec["flops"]
        rec["quality"] = quality_section(rng, 262.1 if trained else 288.2, 0.520 if trained else 0.646, 20, 0.0345,
                                         "trained by this case's train measurement" if trained else "initial")
        if trained:
            rec["train"] = train_section(302, 1.65, 41.0, curve if backend == "torch" else ())
        recs.append(rec)
        i += 1
    for steps, fd_value, kid_value in ((5, 259.8, 0.535), (50, 256.9, 0.484)):
        rec = record(run_id, i, "unet2d", "unet2d-tiny", "torch", batch=16)
        rec["config"] = dict(unet)
        del rec["timing"], rec["flops"]
        rec["quality"] = quality_section(rng, fd_value, kid_value, steps, 0.0345, "trained by this case's train measurement")
        rec["train"] = train_section(302, 1.65, 40.0)
        recs.append(rec)
        i += 1
    for rec in recs:
        rec["case"]["precision"], rec["worker"] = "fp32", {"threads": 1}
    return write_run(root, "mixed", run_id, recs)
