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
    for rec in recs:
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
