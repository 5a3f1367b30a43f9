"""MACs of the dot and convolution instructions in an XLA HLO module's text (post-optimization).

XLA's own cost analysis adds elementwise ops and counts only the non-padded taps of a padded
convolution, so its total cannot be aligned with diffbench's convention. Counting the dot and
convolution instructions of the same optimized module, with all kernel taps, can: that is the
"aligned" XLA number. A computation is counted once per call site (`calls=` of fusions, `to_apply=` of calls;
reductions' `to_apply` hold no dots), a conditional by its most expensive branch; a `while` has
no static trip count and raises.
"""

from __future__ import annotations

import math
import re

_DEF = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\w+\[([\d,]*)\]")
_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_OPERANDS = re.compile(r"\b(dot|convolution)\(%?([\w.\-]+),\s*%?([\w.\-]+)\)")
_CALLS = re.compile(r"\b(?:calls|to_apply)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"\b(?:branch_computations=\{([^}]*)\}|true_computation=%?([\w.\-]+), "
                       r"false_computation=%?([\w.\-]+))")


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.split(",") if d)


def _split(hlo: str) -> tuple[dict[str, list[str]], str]:
    """Computation name -> its instruction lines, and the entry computation's name."""
    comps, entry, current = {}, None, None
    for line in hlo.splitlines():
        header = _HEADER.match(line)
        if header and "=" not in line.split("{")[0].split("(")[0]:
            current = header.group(2)
            comps[current] = []
            entry = current if header.group(1) else entry
        elif line.strip() == "}":
            current = None
        elif current is not None:
            comps[current].append(line)
    if entry is None:
        raise ValueError("HLO text without an ENTRY computation")
    return comps, entry


def _macs(line: str, shapes: dict[str, tuple[int, ...]]) -> tuple[str, int]:
    op, lhs, rhs = _OPERANDS.search(line).groups()
    out = shapes[_DEF.match(line).group(1)]
    if op == "dot":
        dims = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line).group(1)
        return "dot", math.prod(out) * math.prod(shapes[lhs][d] for d in _shape(dims))
    labels = re.search(r"dim_labels=\w+_(\w+)->", line).group(1)  # kernel labels, e.g. 01io
    kernel = shapes[rhs]
    taps = math.prod(kernel[i] for i, c in enumerate(labels) if c.isdigit())
    return "convolution", math.prod(out) * kernel[labels.index("i")] * taps


def hlo_macs(hlo: str) -> dict[str, int]:
    """{"dot": MACs, "convolution": MACs} of the module, following call sites from ENTRY."""
    comps, entry = _split(hlo)
    shapes = {m.group(1): _shape(m.group(2)) for lines in comps.values() for m in map(_DEF.match, lines) if m}

    def walk(name: str, seen: tuple) -> dict[str, int]:
        if name in seen:
            raise ValueError(f"recursive HLO computation {name}")
        total = {"dot": 0, "convolution": 0}
        for line in comps[name]:
            if " while(" in line and "body=" in line:
                raise NotImplementedError("HLO count: a while loop has no static trip count")
            if _OPERANDS.search(line) and _DEF.match(line):
                op, macs = _macs(line, shapes)
                total[op] += macs
            for callee in _CALLS.findall(line):
                for k, v in walk(callee, seen + (name,)).items():
                    total[k] += v
            branches = _BRANCHES.search(line)
            if branches:  # a conditional runs one branch: count the most expensive, as the jaxpr walk does
                names = re.findall(r"%?([\w.\-]+)", branches.group(1) or "") or list(branches.group(2, 3))
                worst = max((walk(b, seen + (name,)) for b in names), key=lambda c: sum(c.values()))
                for k, v in worst.items():
                    total[k] += v
        return total

    return walk(entry, ())
