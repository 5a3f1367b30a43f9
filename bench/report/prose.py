"""What the Markdown and the HTML report both say beside their tables: the legends, the line of
values every case shares, and each run's provenance.
"""

from __future__ import annotations

from bench.report import columns as cols
from bench.report import selection, table


def provenance(report) -> list[dict]:
    """One entry per run: suite, run id, date, git sha, suite hash, host, versions, threads, precision, devices."""
    out = []
    for run_id in dict.fromkeys(str(r.get("run_id")) for r in report.records):
        rs = [r for r in report.records if str(r.get("run_id")) == run_id]
        meta = rs[0].get("_run") or {}
        prov = meta.get("provenance") or {}
        git = prov.get("git") or {}
        host = prov.get("host") or {}
        versions = prov.get("versions") or {}
        accel = host.get("accelerators") or {}
        devices = sorted({str(cols.dig(r, "case", "device")) for r in rs}
                         | {str(cols.dig(r, "timing", s, "device", "name")) for r in rs for s in cols.TIMED_STEPS
                            if cols.dig(r, "timing", s, "device", "device") not in (None, "cpu")})
        out.append({
            "suite": rs[0].get("suite"), "run_id": run_id, "date": meta.get("started"), "ended": meta.get("ended"),
            "git": (str(git.get("sha") or "?")[:10] + (" (dirty)" if git.get("dirty") else "")),
            "suite_sha256": str(meta.get("suite_sha256") or "?")[:12], "suite_path": meta.get("suite_path"),
            "host": f"{host.get('cpu_model', '?')} x{host.get('cpu_count', '?')}",
            "accelerators": ", ".join(str(a) for v in accel.values() if isinstance(v, list) for a in v) or "none",
            "devices": ", ".join(devices),
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v),
            "threads": ", ".join(sorted({str(cols.dig(r, "worker", "threads")) for r in rs})),
            "precision": ", ".join(sorted({str(cols.precision(r)) for r in rs if cols.precision(r)})) or "-",
            "cases": len(rs), "failed": sum(r.get("status") != "ok" for r in rs),
        })
    return out


LEGEND = ("Times are medians per step in ms with their 95% bootstrap CI in brackets; "
          f"{table.UNRELIABLE_MARK} = the timing did not converge (stopped by the repetition or time cap, "
          f"listed below); {table.CONTENDED_MARK} = timed while the CPU was shared (listed below); "
          f"{table.FAILED_MARK} = a measurement inside the case failed (reason below). "
          "GFLOP = 2 x multiply-accumulates (matmuls, convolutions, attention QK^T and AV) "
          "per forward pass; /img divides by the batch; NFE/sample is what the case's quality measurement "
          "sampled with (else the preset's sampler) and GFLOP/sample = NFE/sample x GFLOP/img. "
          "ms/sample = sample-step median x steps per sample / batch. Quality values carry a 95% bootstrap CI "
          "over samples.")
QUALITY_LEGEND = ("Each score with its 95% bootstrap CI over samples (generated and reference sets resampled; "
                  "docs/quality.md) and its floor (the same statistic between two disjoint real sets of the same N). "
                  "vs best: against the best score measured on the same reference set (dataset, N, seed, "
                  "resolution), \"≈ best\" when the paired-bootstrap 95% CI of the difference holds 0 (the two are "
                  "not distinguishable at this N), \"worse\" when it does not. Training GFLOPs: the train "
                  "measurement's counted FLOPs (0: the seeded initialization).")


RATIOS_NOTE = ("Each case divided by the baseline case with the same backend, device, precision, resolution, "
               "frames and batch; time ratios carry a 95% bootstrap CI from both cases' raw samples.")


def provenance_line(p: dict) -> tuple[str, str]:
    """One provenance entry as (its run, the rest), for report.md and report.html (the run in code font)."""
    return (f"{p['suite']}/{p['run_id']}",
            f"({p['date']}): git {p['git']}; suite sha256 {p['suite_sha256']}; {p['host']}; accelerators: "
            f"{p['accelerators']}; devices: {p['devices']}; threads {p['threads']}; precision {p['precision']}; "
            f"{p['versions']}; {p['cases']} case(s), {p['failed']} failed")


def constants_text(t: table.Table) -> str:
    return f"Every case: {selection.constants_line(list(t.constants), t.records)}." if t.constants else ""
