"""Backend adapters: `get("torch")` / `get("jax")` returns the adapter package (imported lazily,
so importing `bench.backends` pulls in neither framework). Both packages have the same modules
and the same public names (their `__all__`, less each one's BACKEND_ONLY)."""

from __future__ import annotations

import importlib
from types import ModuleType

ADAPTERS = {"torch": "bench.backends.torch_adapter", "jax": "bench.backends.jax_adapter"}


def get(name: str) -> ModuleType:
    if name not in ADAPTERS:
        raise ValueError(f"unknown backend {name!r}; allowed: {sorted(ADAPTERS)}")
    return importlib.import_module(ADAPTERS[name])
