"""Backend adapters: `get("torch")` / `get("jax")` returns the adapter module (imported lazily,
so importing `bench.backends` pulls in neither framework)."""

from __future__ import annotations

import importlib
from types import ModuleType

ADAPTERS = {"torch": "bench.backends.torch_backend", "jax": "bench.backends.jax_backend"}


def get(name: str) -> ModuleType:
    if name not in ADAPTERS:
        raise ValueError(f"unknown backend {name!r}; allowed: {sorted(ADAPTERS)}")
    return importlib.import_module(ADAPTERS[name])
