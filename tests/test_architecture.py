"""The import graph is the architecture: no cycles, and no layer imports one above it.

Layers, bottom to top (docs/architecture.md): foundation (config, calendar, errors, aio, progress, heap) -> data -> store
-> domain -> pipeline -> entry points (api, cli and the seed's names). `flows` (Prefect/Ray) sits above the pipeline
and is reached from the library only through entry-point lookup; nothing in technic_v4 or flows imports flows (technic_v4
only), benchmarks or the test support (tests/support).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("technic_v4", "flows")

FOUNDATION = {"config", "calendar", "errors", "aio", "progress", "heap"}
ENTRY_POINTS = {"api", "cli", "startup", "scanner_core", "evaluation"}
RANK = {"foundation": 0, "data": 1, "store": 2, "domain": 3, "pipeline": 4, "entry": 5}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (absolute and relative, at any depth of the file)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                subs = [f"{base}.{a.name}" for a in node.names]
                # `from pkg import module` depends on the module; `from module import name` on the module
                names = [n for n in subs if n in files] or [base]
            for name in names:
                if name.split(".")[0] in (*PACKAGES, "benchmarks", "tests"):
                    # the longest known module the name refers to
                    while name and name not in files and not name.startswith(("benchmarks", "tests")):
                        name = name.rpartition(".")[0]
                    if name and name != mod:
                        deps.add(name)
        graph[mod] = deps
    return graph


def layer(mod: str) -> str | None:
    parts = mod.split(".")
    if parts[0] != "technic_v4" or len(parts) == 1:
        return None
    head = parts[1]
    if head in FOUNDATION:
        return "foundation"
    if head in ENTRY_POINTS:
        return "entry"
    return head if head in RANK else None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), as sorted module lists."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle_and_an_upward_import():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("technic_v4.store.bar_store") == "store" and layer("technic_v4.api") == "entry"


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_technic_v4_never_imports_flows_or_benchmarks():
    bad = {m: sorted(d for d in deps if d.split(".")[0] in ("flows", "benchmarks"))
           for m, deps in import_graph().items() if m.startswith("technic_v4")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_product_never_imports_test_support():
    bad = {m: sorted(d for d in deps if d.split(".")[0] == "tests") for m, deps in import_graph().items()}
    assert {m: d for m, d in bad.items() if d} == {}
    assert not (REPO / "technic_v4" / "testing").exists()


def test_dependencies_point_down():
    upward = []
    for mod, deps in import_graph().items():
        src = layer(mod)
        for dep in deps:
            dst = layer(dep)
            if src is not None and dst is not None and RANK[dst] > RANK[src]:
                upward.append(f"{mod} ({src}) -> {dep} ({dst})")
    assert upward == []


def test_prefect_and_ray_only_under_flows():
    offenders = []
    for path in (REPO / "technic_v4").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n.split(".")[0] in ("prefect", "prefect_ray", "ray") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert sorted(set(offenders)) == []
