"""Plugins that failed to import in this process, as the loader (architectures/plugins.py)
recorded them. The registry's "unknown architecture/preset" errors name them, reading them here
rather than from the loader, which imports the registry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    plugin: str  # module name, or "name = value" of an entry point
    source: str  # "--plugins", "plugins:", "DIFFBENCH_PLUGINS", "entry point of <distribution>"
    error: str  # "<ExceptionType>: <message>"

    def line(self) -> str:
        return f"plugin {self.plugin!r} ({self.source}) failed to import: {self.error}; its architectures are not available"


FAILED: dict[str, Failure] = {}  # plugin -> its last failure in this process


def failures() -> list[Failure]:
    """Plugins that failed in this process and were not loaded since."""
    return list(FAILED.values())


def failure_hint() -> str:
    """A clause for 'unknown architecture/preset' errors: which plugins failed to load."""
    failed = failures()
    if not failed:
        return ""
    return "; plugins that failed to import: " + ", ".join(f"{f.plugin} ({f.error})" for f in failed)
