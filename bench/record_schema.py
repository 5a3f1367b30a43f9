"""The record schema on read: version check, migration of older records, type checks.

Every reader of records (`diffbench report`, `diffbench compare`, bench.results) goes through
`load`: a record of a newer schema than this code is refused, an older one is migrated to the
current names (`migrate`, one rename table per version), and the fields the readers use are
checked for type, so a damaged or hostile file ends as one RecordError line naming the file and
the field. Fields this table does not list are passed through unchecked (newer fields, open
mappings such as `config`). The fields and their units: docs/records.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.records import SCHEMA, RecordError
from bench.strict_yaml import printable, show

MAX_BYTES = 64 << 20  # a record is ~20 KB (100 raw samples per timed step); refuse anything absurd unread
MAX_DEPTH = 64  # records nest ~6 deep; deeper JSON would only exhaust the stack of a reader

# schema version -> (old key path, new name) applied to migrate from that version to the next.
# Paths are dotted; `*` matches every key of a mapping; a list on the way is walked element-wise.
RENAMES = {
    1: [  # schema 1 -> 2: units in every name (`gflops` meant GFLOP in records, GFLOP/s in run.json)
        ("worker_seconds", "worker_s"),
        ("flops.gflops", "gflop"), ("flops.gmacs", "gmac"),
        ("flops.gflops_per_image", "gflop_per_image"), ("flops.gmacs_per_image", "gmac_per_image"),
        ("flops.gflops_per_sample", "gflop_per_sample"), ("flops.breakdown_gmacs", "breakdown_gmac"),
        ("flops.counters.*.breakdown_gflops", "breakdown_gflop"), ("flops.counters.*.raw_macs", "raw_mac"),
        *[(f"{section}.{old}", new) for section in ("flops.train_step", "train.step_flops")
          for old, new in (("gflops", "gflop"), ("gflops_per_image", "gflop_per_image"),
                           ("jaxpr_gflops", "jaxpr_gflop"), ("xla_gflops", "xla_gflop"))],
        ("train.step_flops.flops", "flop"),
        ("timing.*.images_per_s", "image_steps_per_s"), ("timing.*.images_per_s_ci95", "image_steps_per_s_ci95"),
        ("timing.*.utilization.achieved_gflops_per_s", "achieved_gflop_per_s"),
        ("timing.*.utilization.peak_tflops", "peak_tflop_per_s"),
        ("quality.metrics.feature_seconds", "feature_s"),
        ("quality.sampling.seconds", "duration_s"), ("quality.scoring_seconds", "scoring_s"),
        ("train.gflops_spent", "gflop_spent"), ("train.step_gflops", "step_gflop"),
        ("train.seconds", "duration_s"), ("train.compile_seconds", "compile_s"),
        ("train.steps_per_second", "steps_per_s"),
        ("cpu_peaks.*.*.gflops", "gflop_per_s"),  # run.json
    ],
}

# Type of each field a reader uses, checked when present. "?" allows null. Kinds: int, num
# (finite int or float), str, bool, dict, list, nums (list of finite numbers), pair (two numbers).
_STEP = {"median_ms": "num?", "samples_ms": "nums?", "ci95_ms": "pair?", "iqr_ms": "num?", "rel_iqr": "num?",
         "reps": "int?", "nfe": "int?", "batch": "int?", "stop_reason": "str?", "contended": "bool?",
         "policy": "dict?", "policy.target_rel_iqr": "num?", "utilization": "dict?", "utilization.mfu": "num?",
         "image_steps_per_s": "num?", "samples_per_s": "num?", "device": "dict?", "device_time": "dict?",
         "device_time.samples_ms": "nums?", "cpu_samples_ms": "nums?"}
RECORD_FIELDS = {
    "schema": "int", "case_id": "str", "suite": "str", "run_id": "str", "status": "str", "case": "dict",
    "case.index": "int", "case.batch": "int?", "case.arch": "str?", "case.preset": "str?", "case.backend": "str?",
    "case.device": "str?", "case.overrides": "dict?", "case.seed": "int?", "case.threads": "int?",
    "case.precision": "str?", "started": "str?", "ended": "str?", "duration_s": "num?", "worker_s": "num?",
    "params": "int?", "config": "dict?", "error": "dict?", "error.type": "str?", "error.message": "str?",
    "worker": "dict?", "worker.log": "str?", "worker.threads": "int?",
    "flops": "dict?", "flops.gflop": "num?", "flops.gflop_per_image": "num?", "flops.gflop_per_sample": "num?",
    "flops.nfe_per_sample": "int?", "flops.agreement": "dict?", "flops.agreement.ok": "bool?",
    "flops.agreement.disagreeing": "dict?", "flops.train_step": "dict?", "flops.train_step.gflop_per_image": "num?",
    "timing": "dict?", **{f"timing.{s}": "dict?" for s in ("sample_step", "train_step")},
    **{f"timing.{s}.{k}": v for s in ("sample_step", "train_step") for k, v in _STEP.items()},
    "memory": "dict?", "memory.peak_rss_bytes": "num?", "memory.device_peak_bytes": "num?",
    "quality": "dict|list?", "quality.metrics": "dict|list?", "train": "dict?",
}
QUALITY_FIELDS = {"metric": "str", "value": "num?", "n": "int?", "floor": "num?", "feature_space": "str?"}
RUN_FIELDS = {
    "schema": "int", "run_id": "str?", "suite": "str?", "started": "str?", "ended": "str?", "suite_path": "str?",
    "suite_sha256": "str?", "provenance": "dict?", "provenance.git": "dict?", "provenance.host": "dict?",
    "provenance.host.accelerators": "dict?", "provenance.versions": "dict?", "cpu_peaks": "dict?",
}
_ALLOWED = {"int": "an integer", "num": "a finite number", "str": "a string", "bool": "true or false",
            "dict": "a JSON object", "list": "a JSON array", "nums": "an array of finite numbers",
            "pair": "an array of two finite numbers"}


def _finite(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer past the float range
        return False


_KIND = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63,
         "num": _finite, "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
         "dict": lambda v: isinstance(v, dict), "list": lambda v: isinstance(v, list),
         "nums": lambda v: isinstance(v, list) and all(map(_finite, v)),
         "pair": lambda v: isinstance(v, list) and len(v) == 2 and all(map(_finite, v))}


def read(path, what: str = "record") -> dict:
    """A JSON object from `path`, bounded in size and depth; RecordError names the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RecordError(f"{path}: not a diffbench {what}: {size} bytes; allowed: at most {MAX_BYTES} bytes")
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON, huge integers
        raise RecordError(f"{path}: unreadable {what}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a diffbench {what}: a JSON {type(data).__name__}; allowed: a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise RecordError(f"{path}: not a diffbench {what}: nested more than {MAX_DEPTH} levels deep")
    return data


def _depth(data) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            stack += [(v, depth + 1) for v in children if isinstance(v, (dict, list))]
    return deepest


def version(data: dict, path, what: str = "record") -> int:
    """The schema version (absent: 1, from before the field existed); a newer one is refused."""
    v = data.get("schema", 1)
    if not _KIND["int"](v) or v < 1:
        raise RecordError(f"{path}: bad {what} field schema: {show(v)}; allowed: an integer 1..{SCHEMA}")
    if v > SCHEMA:
        raise RecordError(f"{path}: {what} schema {v} is newer than this diffbench reads (schema {SCHEMA}); "
                          f"allowed: schema 1..{SCHEMA}; upgrade diffbench to read it")
    return v


def migrate(data: dict) -> dict:
    """A record or run.json of an older schema, renamed to the current one (in place, returned).
    `schema` becomes the current version; `schema_migrated_from` keeps the version read."""
    start = data.get("schema", 1)
    for v in range(start, SCHEMA):
        for old, new in RENAMES.get(v, ()):
            *parents, key = old.split(".")
            for node in _nodes(data, parents):
                if key in node:
                    node[new] = node.pop(key)
    if start < SCHEMA:
        data["schema"], data["schema_migrated_from"] = SCHEMA, start
    return data


def _nodes(data, keys: list[str]):
    """The mappings at a dotted path (`*` = every key; lists are walked element-wise)."""
    level = [data]
    for key in keys:
        nxt = []
        for node in level:
            for item in (node if isinstance(node, list) else [node]):
                if isinstance(item, dict):
                    nxt += list(item.values()) if key == "*" else [item[key]] if key in item else []
        level = nxt
    return [item for node in level for item in (node if isinstance(node, list) else [node]) if isinstance(item, dict)]


def validate(data: dict, path, fields: dict, what: str = "record", required=()) -> None:
    """Type-check the listed fields present in `data`; RecordError names the file and the field."""
    missing = [k for k in required if k not in data]
    if missing:
        raise RecordError(f"{path}: not a diffbench {what} (missing {', '.join(missing)}); allowed: record files, "
                          "run directories, suite directories or a results folder")
    for field, kind in fields.items():
        *parents, key = field.split(".")
        node = data
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            _check(node[key], kind, field, path, what)
    if what == "record":
        for where, entry in _quality_entries(data.get("quality")):
            if not isinstance(entry, dict):
                _fail(entry, "a JSON object", where, path, what)
            for key, kind in QUALITY_FIELDS.items():
                if key in entry and (key != "metric" or where.endswith("]")):
                    _check(entry[key], kind, f"{where}.{key}", path, what)


def _quality_entries(q) -> list[tuple[str, object]]:
    """(field name, metric entry) in every shape the report reads: a list of entries, or one
    under `metrics`, or a mapping name -> entry (bench.report.columns.quality_entries)."""
    prefix = "quality"
    if isinstance(q, dict) and isinstance(q.get("metrics"), (list, dict)):
        q, prefix = q["metrics"], "quality.metrics"
    if isinstance(q, list):
        return [(f"{prefix}[{i}]", e) for i, e in enumerate(q)]
    if isinstance(q, dict):
        return [(f"{prefix}.{k}", e) for k, e in q.items() if isinstance(e, dict) and "value" in e]
    return []


def _check(value, kind: str, field: str, path, what: str) -> None:
    optional, kinds = kind.endswith("?"), kind.rstrip("?").split("|")
    if (value is None and optional) or any(_KIND[k](value) for k in kinds):
        return
    allowed = " or ".join(_ALLOWED[k] for k in kinds) + (", or null" if optional else "")
    _fail(value, allowed, field, path, what)


def _fail(value, allowed: str, field: str, path, what: str):
    if isinstance(value, (dict, list)):
        value = f"<JSON {'object' if isinstance(value, dict) else 'array'} of {len(value)}>"
    raise RecordError(f"{path}: bad {what} field {printable(field, 200)}: {show(value)}; allowed: {allowed}")


def load(path) -> dict:
    """One record file: read, version-checked, migrated and type-checked."""
    data = read(path)
    version(data, path)
    migrate(data)
    validate(data, path, RECORD_FIELDS, required=("case_id", "suite", "run_id", "case"))
    return data


def load_run(path) -> dict:
    """A run.json: read, version-checked, migrated and type-checked."""
    data = read(path, "run file")
    version(data, path, "run file")
    migrate(data)
    validate(data, path, RUN_FIELDS, "run file")
    return data
