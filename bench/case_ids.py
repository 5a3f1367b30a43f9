"""A suite's grid points become its numbered cases, each with an id that says what it is:
arch/preset/backend/device/bN, then only what departs from the defaults (threads, CPUs,
precision, compile, ...; overrides, train and quality settings as short hashes). Ids are unique:
two points that differ only in what they measure get their measure lists appended, and two that
do not differ at all are refused.
"""

from __future__ import annotations

import hashlib

from bench.case import Case
from bench.overrides import canonical_json
from bench.strict_yaml import SpecError


def number(points: list[dict], source: str) -> tuple[Case, ...]:
    """Index and name the grid points; ids are unique, or two cases are the same case."""
    ids = [_base_id(p) for p in points]
    groups: dict[str, list[int]] = {}
    for i, case_id in enumerate(ids):
        groups.setdefault(case_id, []).append(i)
    for members in groups.values():
        if len(members) > 1:
            for i in members:
                ids[i] += "/" + "+".join(points[i]["measure"])
    seen: dict[str, int] = {}
    for i, case_id in enumerate(ids):
        if case_id in seen:
            first = points[seen[case_id]]["origin"]
            raise SpecError(source, points[i]["origin"], f"case {_base_id(points[i])!r} (measure "
                            f"{list(points[i]['measure'])}) is already given by {first}",
                            "distinct cases (merge their measure lists)")
        seen[case_id] = i
    return tuple(Case(id=ids[i], index=i, **_case_fields(p)) for i, p in enumerate(points))


def _case_fields(point: dict) -> dict:
    fields = {k: v for k, v in point.items() if k not in ("origin", "timeout")}
    return dict(fields, timeout_s=point["timeout"])


def _base_id(p: dict) -> str:
    parts = [p["arch"], p["preset"], p["backend"], p["device"], f"b{p['batch']}"]
    if p["threads"] is not None:
        parts.append(f"t{p['threads']}")
    if p["cpus"] is not None:
        parts.append("cpu" + _ranges(p["cpus"]))
    if p["precision"] != "fp32":
        parts.append(p["precision"])
    if p["compile"] == "default":
        parts.append("compiled")
    elif p["compile"] != "none":
        parts.append(f"compiled-{p['compile']}")
    if p["memory_format"] != "contiguous":
        parts.append(p["memory_format"])
    if p["attention"] != "auto":
        parts.append(f"sdpa-{p['attention']}")
    if p["cuda_graphs"]:
        parts.append("cudagraphs")
    if p.get("cudnn_benchmark") is not None:
        parts.append("cudnn-benchmark-" + ("on" if p["cudnn_benchmark"] else "off"))
    if p.get("fused_adamw"):
        parts.append("fused-adamw")
    if p.get("donate") is False:
        parts.append("no-donate")
    if p["seed"]:
        parts.append(f"s{p['seed']}")
    if p["overrides"]:
        parts.append("o" + hashlib.sha256(canonical_json(p["overrides"]).encode()).hexdigest()[:8])
    if p["train"] is not None:
        parts.append("tr" + hashlib.sha256(canonical_json(p["train"]).encode()).hexdigest()[:8])
    if p.get("quality") is not None:
        parts.append("q" + hashlib.sha256(canonical_json(p["quality"].to_dict()).encode()).hexdigest()[:8])
    return "/".join(parts)


def _ranges(cpus) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)
