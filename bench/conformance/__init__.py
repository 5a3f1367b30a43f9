"""The conformance kit: what every registered architecture must satisfy, run by `diffbench
check NAME` and by the test suite (tests/test_conformance.py) over every registry entry.

Checks and what they assert: bench/conformance/checks.py. Driver, shared state and report:
bench/conformance/kit.py. User guide: docs/adding-an-architecture.md.
"""

from bench.conformance.kit import Kit, Report, Result, run

__all__ = ["Kit", "Report", "Result", "run"]
