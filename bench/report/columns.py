"""The report's columns: name -> how to read one value from one record (or None when absent).

Every extractor takes the raw record (a dict as written by the runner, with `_run` = its run.json)
and returns a value or None. A column no record has a value for is left out of the report, so
records from older or newer versions of the harness (without quality, precision or training
sections, or with them) all render. Docs: docs/reports.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bench.results import dig  # noqa: F401 - re-exported: the report modules import it from here

TIMED_STEPS = ("sample_step", "train_step")


@dataclass(frozen=True)
class Column:
    name: str  # what --columns and --group-by take
    header: str  # what the table shows
    get: Callable[[dict], Any]
    fmt: str = "{}"
    ci: Callable[[dict], Any] | None = None  # (lo, hi) shown after the value, CSV gets _lo/_hi columns
    unreliable: Callable[[dict], bool] | None = None  # marks the cell (timing that did not converge)
    kind: str = "number"  # "label" columns identify the case; "number" columns are measurements
    why: Callable[[dict], str | None] | None = None  # why a sub-measurement of an ok case failed (marks the cell)
    contended: Callable[[dict], bool] | None = None  # marks a timing taken while the CPU was shared


def timing(record: dict, step: str) -> dict | None:
    t = dig(record, "timing", step)
    return t if isinstance(t, dict) and t.get("median_ms") is not None else None


def converged(t: dict | None) -> bool | None:
    """A timed step converged when the adaptive rule stopped it (IQR/median below the target),
    not the repetition or time cap (docs/measurement.md)."""
    return None if t is None else t.get("stop_reason") == "converged"


def not_converged(record: dict, step: str) -> bool:
    return converged(timing(record, step)) is False


def _timing_value(step: str, key: str, scale: float = 1.0):
    def get(record):
        t = timing(record, step)
        v = None if t is None else t.get(key)
        return None if v is None else v * scale
    return get


def _ci(step: str):
    def get(record):
        t = timing(record, step)
        ci = None if t is None else t.get("ci95_ms")
        return tuple(ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci else None
    return get


def precision(record: dict):
    """The case's precision where the harness records it (case field, timing), else the dtype."""
    for value in (dig(record, "case", "precision"), dig(record, "precision"),
                  *(dig(record, "timing", s, "precision") for s in TIMED_STEPS),
                  *(dig(record, "timing", s, "device", "dtype") for s in TIMED_STEPS)):
        if value:
            return value if isinstance(value, str) else str(value)
    return None


RESOLUTION_KEYS = ("image_size", "resolution", "input_size", "size", "resolutions")


def _sizes(node) -> list[int]:
    """Every resolution field at the shallowest depth that has one (nested configs: a NestedUNet's
    levels, a phase-space model's backbone `network`)."""
    if isinstance(node, list):
        return [s for item in node for s in _sizes(item)]
    if not isinstance(node, dict):
        return []
    here = [v for k in RESOLUTION_KEYS for v in (node.get(k) if isinstance(node.get(k), list) else [node.get(k)])
            if isinstance(v, int) and not isinstance(v, bool)]
    if here:
        return here
    return [s for k, v in node.items() if k != "process" for s in _sizes(v)]


def resolution(record: dict):
    """The model's (largest) input resolution, wherever its config keeps it."""
    sizes = _sizes(record.get("config") or {})
    return max(sizes) if sizes else None


def frames(record: dict):
    f = dig(record, "config", "frames")
    return f if isinstance(f, int) and not isinstance(f, bool) and f > 0 else None


def nfe_per_step(record: dict):
    """Network evaluations in one timed sampling step (2 with guidance or self-conditioning)."""
    t = timing(record, "sample_step")
    return (t or {}).get("nfe") or 1


def nfe_sample(record: dict):
    """NFE per generated sample: what the case's quality measurement really sampled with, else
    the preset's sampler (the flops record)."""
    return dig(record, "quality", "sampling", "nfe") or dig(record, "flops", "nfe_per_sample")


def gflop_image(record: dict):
    """GFLOPs of one forward pass (one NFE) per image."""
    return dig(record, "flops", "gflop_per_image") or dig(record, "quality", "sampling", "gflop_per_image")


def gflop_sample(record: dict):
    """GFLOPs to generate one sample at nfe_sample: the quality measurement's own count, else
    NFE/sample x GFLOPs/img."""
    sampled = dig(record, "quality", "sampling", "gflop_per_sample")
    if sampled is not None:
        return sampled
    if dig(record, "quality", "sampling", "nfe") and gflop_image(record):
        return nfe_sample(record) * gflop_image(record)
    return dig(record, "flops", "gflop_per_sample")


def cpu_contended(record: dict, step: str) -> bool:
    return bool(dig(record, "timing", step, "contended"))


def ms_per_sample(record: dict):
    """Wall clock to generate one sample: step median x steps per sample / batch."""
    t, nfe, batch = timing(record, "sample_step"), nfe_sample(record), dig(record, "case", "batch")
    if t is None or not nfe or not batch:
        return None
    return t["median_ms"] * (nfe / nfe_per_step(record)) / batch


def samples_per_s(record: dict):
    """Generated samples per second at the NFE the column ms/sample uses (the quality measurement's
    own NFE when the case sampled for quality, else the preset's sampler): 1000 / ms/sample. The
    record's `timing.sample_step.samples_per_s` is at the preset's sampler steps."""
    ms = ms_per_sample(record)
    return 1e3 / ms if ms else None


def _flop_check(record: dict):
    ok = dig(record, "flops", "agreement", "ok")
    return None if ok is None else ("agree" if ok else "DISAGREE")


def _counter_errors(record: dict):
    """Traced FLOP counters that failed (the check then stands on the ones that ran)."""
    bad = {n: c.get("error") for n, c in (dig(record, "flops", "counters") or {}).items()
           if isinstance(c, dict) and c.get("error")}
    return "; ".join(f"{n} failed: {str(e).splitlines()[0]}" for n, e in bad.items()) or None


def _train_flops_error(record: dict):
    t = dig(record, "flops", "train_step")
    return None if not isinstance(t, dict) or t.get("gflop") is not None else (t.get("error") or "not counted")


def _mfu_why(step: str):
    def why(record):
        u = dig(timing(record, step) or {}, "utilization")
        if not isinstance(u, dict) or u.get("mfu") is not None or u.get("mfu_flagged") is not None:
            return None  # a flagged MFU is listed under "MFU not reported" (flagged_mfu), not as a failure
        return u.get("mfu_why_null")
    return why


def _mb(*keys):
    def get(record):
        v = dig(record, *keys)
        return None if v is None else v / 1e6
    return get


MFU_FLAGGED = "flagged (>100%)"


def mfu(record: dict, step: str):
    """The step's MFU; an impossible one (above 1, kept as `mfu_flagged`) shows as MFU_FLAGGED, never
    as a number (docs/measurement.md)."""
    u = dig(timing(record, step) or {}, "utilization") or {}
    value = u.get("mfu")
    if (value is None and u.get("mfu_flagged") is not None) or (isinstance(value, (int, float)) and value > 1):
        return MFU_FLAGGED  # older records stored the impossible value as `mfu`
    return value


def _status(record: dict):
    return record.get("status")


STATIC = [
    Column("case", "case", lambda r: r.get("case_id"), kind="label"),
    Column("arch", "architecture", lambda r: dig(r, "case", "arch"), kind="label"),
    Column("preset", "preset", lambda r: dig(r, "case", "preset"), kind="label"),
    Column("backend", "backend", lambda r: dig(r, "case", "backend"), kind="label"),
    Column("device", "device", lambda r: dig(r, "case", "device"), kind="label"),
    Column("precision", "precision", precision, kind="label"),
    Column("resolution", "resolution", resolution, kind="label"),
    Column("frames", "frames", frames, kind="label"),
    Column("batch", "batch", lambda r: dig(r, "case", "batch"), kind="label"),
    Column("params", "params (M)", lambda r: None if r.get("params") is None else r["params"] / 1e6, "sig3"),
    Column("gflop_nfe", "GFLOP/NFE", lambda r: dig(r, "flops", "gflop"), "sig4"),
    Column("gflop_image", "GFLOP/img", gflop_image, "sig4"),
    Column("nfe_sample", "NFE/sample", nfe_sample, "{}"),
    Column("gflop_sample", "GFLOP/sample", gflop_sample, "sig4"),
    Column("gflop_train", "train GFLOP/img", lambda r: dig(r, "flops", "train_step", "gflop_per_image"), "sig4",
           why=_train_flops_error),
    Column("flop_check", "FLOP check", _flop_check, kind="label", why=_counter_errors),
    Column("sample_ms", "sample ms/step", _timing_value("sample_step", "median_ms"), "sig3", ci=_ci("sample_step"),
           unreliable=lambda r: not_converged(r, "sample_step"), contended=lambda r: cpu_contended(r, "sample_step")),
    Column("ms_per_sample", "ms/sample", ms_per_sample, "sig4",
           unreliable=lambda r: not_converged(r, "sample_step"), contended=lambda r: cpu_contended(r, "sample_step")),
    Column("samples_per_s", "samples/s", samples_per_s, "sig3", unreliable=lambda r: not_converged(r, "sample_step"),
           contended=lambda r: cpu_contended(r, "sample_step")),
    Column("train_ms", "train ms/step", _timing_value("train_step", "median_ms"), "sig3", ci=_ci("train_step"),
           unreliable=lambda r: not_converged(r, "train_step"), contended=lambda r: cpu_contended(r, "train_step")),
    Column("train_img_s", "train img/s", _timing_value("train_step", "image_steps_per_s"), "sig3",
           unreliable=lambda r: not_converged(r, "train_step"), contended=lambda r: cpu_contended(r, "train_step")),
    Column("sample_mfu", "sample MFU", lambda r: mfu(r, "sample_step"), "{:.1%}",
           why=_mfu_why("sample_step")),
    Column("train_mfu", "train MFU", lambda r: mfu(r, "train_step"), "{:.1%}",
           why=_mfu_why("train_step")),
    Column("contended", "CPU shared", lambda r: "yes" if any(
        dig(r, "timing", s, "contended") for s in ("sample_step", "train_step")) else None, kind="label"),
    Column("peak_rss_mb", "peak RSS (MB)", _mb("memory", "peak_rss_bytes"), "{:.0f}"),
    Column("device_peak_mb", "device peak (MB)", _mb("memory", "device_peak_bytes"), "{:.0f}"),
    Column("threads", "threads", lambda r: dig(r, "worker", "threads"), kind="label"),
    Column("status", "status", _status, kind="label"),
]


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        return {k: v for key, sub in value.items() for k, v in flatten(sub, f"{prefix}.{key}" if prefix else key).items()}
    return {prefix: value}


def override_columns(records) -> list[Column]:
    """One column per override key used by any record (`override.num_blocks`, `override.process.schedule`)."""
    keys = dict.fromkeys(k for r in records for k in flatten(dig(r, "case", "overrides") or {}) if k)
    return [Column(f"override.{k}", k, (lambda key: lambda r: flatten(dig(r, "case", "overrides") or {}).get(key))(k),
                   kind="label") for k in keys]


def quality_entries(record: dict) -> dict[str, dict]:
    """metric name -> {value, n, feature_space, floor, ...}, from whichever shape the record
    stores: a list of dicts with `metric`, a {"metrics": [...]} mapping, or {name: {value, ...}}."""
    q = record.get("quality")
    if isinstance(q, dict) and isinstance(q.get("metrics"), (list, dict)):
        q = q["metrics"]
    if isinstance(q, list):
        return {e["metric"]: e for e in q if isinstance(e, dict) and isinstance(e.get("metric"), str)}
    if isinstance(q, dict):
        return {k: v for k, v in q.items() if isinstance(v, dict) and "value" in v}
    return {}


DEFAULT_HIDDEN = ("case",)  # the readable columns identify a case; --columns case brings the id back
ALIASES = {f"gflops_{k}": f"gflop_{k}" for k in ("nfe", "image", "sample", "train")}  # names before schema 2


def with_data(columns: list[Column], records) -> list[Column]:
    """The columns that have a value in at least one record."""
    return [c for c in columns if any(c.get(r) is not None for r in records)]
