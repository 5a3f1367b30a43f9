"""`compare --control CASE`: divide out the machine's drift between two runs.

Two runs taken at different times can see a different machine (another tenant, a cooler or
hotter host): every case of a run then moves together, and nothing computed from the two runs'
own rounds can tell that from a code change (docs/reports.md, "How often compare is wrong":
identical code read 0.87-1.23x between runs on an idle 2-vCPU VM). A control case, one whose
code did not change between A and B, measures that drift: rounds interleave the cases of a run
(round k of every case runs in one wave), so each case's round-k median divided by the control's
round-k median of the same step cancels what the machine did to both. compare then tests these
per-round ratios exactly as it tests plain round medians.
"""

from __future__ import annotations

import fnmatch


def find_control(ids_a, ids_b, pattern: str) -> str:
    """The one case in both runs that `pattern` names: its exact id, else the one id matching
    it as a glob or containing it. Anything else is a ValueError naming the candidates."""
    both = [c for c in ids_a if c in set(ids_b)]
    if pattern in both:
        return pattern
    hits = [c for c in both if fnmatch.fnmatchcase(c, pattern) or pattern in c]
    if len(hits) == 1:
        return hits[0]
    shown = ", ".join((hits or both)[:6]) + (", ..." if len(hits or both) > 6 else "")
    what = f"matches {len(hits)} cases" if hits else "matches no case in both runs"
    raise ValueError(f"--control {pattern!r}: {what}; allowed: one case id in both runs ({shown or 'none'})")


def rounds_by_index(t: dict, key: str) -> dict[int, float] | None:
    """round number -> that round's statistic (`key`) of one timed step; a record without rounds
    is round 1. None when a round lacks the statistic."""
    rounds = t.get("rounds")
    if not (isinstance(rounds, list) and rounds):
        value = t.get(key)
        return {1: float(value)} if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    out = {}
    for k, r in enumerate(rounds, start=1):
        value = r.get(key) if isinstance(r, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            return None
        out[int(r.get("round", k))] = float(value)
    return out


def normalized(case_t: dict, control_t: dict | None, key: str) -> tuple[list[float] | None, str | None]:
    """The case's per-round statistic divided by the control's of the same round: (values, None),
    or (None, why) when the control did not time the step or the two do not share every round."""
    if control_t is None:
        return None, "the control case did not time this step"
    case, control = rounds_by_index(case_t, key), rounds_by_index(control_t, key)
    if case is None or control is None:
        return None, "a round lacks the compared statistic"
    if set(case) != set(control):
        return None, (f"rounds {sorted(case)} of the case and {sorted(control)} of the control differ: "
                      "only rounds run in the same wave can be divided")
    return [case[k] / control[k] for k in sorted(case)], None
