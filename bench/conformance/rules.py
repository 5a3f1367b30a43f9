"""What every conformance check goes by: the batch and the parity tolerance, the two ways a check
ends other than passing (`Fail`, `Skip`), and the arrays of an output tree it compares.
"""

from __future__ import annotations

BATCH = 2
TOLERANCE = 1e-5  # fp32 parity, relative to the output's scale


class Fail(AssertionError):
    """A check's failure; the message carries the numbers."""


class Skip(Exception):
    """A check that does not apply (the reason is the message)."""


def leaves(tree) -> list:
    """Arrays of an output or input tree (an array, a tuple/list of them, None dropped)."""
    if tree is None:
        return []
    if isinstance(tree, (tuple, list)):
        return [a for item in tree for a in leaves(item)]
    return [tree]
