"""The project's modules (bench/, architectures/) import each other without cycles, counting
imports inside functions too (a lazy import that closes a cycle is still one); imports under
`if TYPE_CHECKING:` are left out. Layering: architectures never imports bench."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "architectures")


def modules() -> dict[str, tuple[Path, bool]]:
    """dotted name -> (file, is a package's __init__)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def _imports(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            for stmt in child.orelse:
                yield from _imports(ast.Module(body=[stmt], type_ignores=[]))
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _imports(child)


def graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first such import}."""
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    out = {}
    for name, (path, is_package) in mods.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for imp in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(imp, ast.Import):
                targets = [resolve(a.name) for a in imp.names]
            else:
                base = imp.module or ""
                if imp.level:
                    parts = package.split(".")[:len(package.split(".")) - imp.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else resolve(base) for a in imp.names]
            for target in targets:
                if target and target != name:
                    edges.setdefault(target, imp.lineno)
        out[name] = edges
    return out


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def describe(g, component: list[str]) -> str:
    edges = [f"{a}:{line} -> {b}" for a in component for b, line in sorted(g[a].items()) if b in component]
    return "; ".join(edges)


def test_graph_sees_lazy_imports():
    g = graph()
    assert "bench.cli" in g and "architectures.registry" in g
    assert "bench.report.build" in g["bench.commands"]  # imported inside a function


def test_no_import_cycles():
    g = graph()
    found = cycles(g)
    assert not found, "import cycles:\n" + "\n".join(describe(g, c) for c in found)


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_architectures_never_import_bench():
    g = graph()
    up = [f"{a}:{line} -> {b}" for a, edges in g.items() if a.startswith("architectures")
          for b, line in edges.items() if b.startswith("bench")]
    assert not up, up


def test_reports_import_neither_models_nor_backends():
    """Reports are rebuilt from records alone."""
    g = graph()
    down = [f"{a}:{line} -> {b}" for a, edges in g.items() if a.startswith("bench.report")
            for b, line in edges.items() if b.startswith(("architectures", "bench.backends"))]
    assert not down, down
