"""The rooms of ``common/`` (import name ``nin``): no module imports, even lazily inside a
function, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import nin

COMMON = Path(nin.__file__).parent


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The ``nin`` modules ``path`` imports anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nin."):
            found.add(node.module.split(".")[1])
    return found & modules - {path.stem}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_no_import_cycle_in_common():
    modules = {p.stem for p in COMMON.glob("*.py")}
    graph = {p.stem: _imports(p, modules) for p in COMMON.glob("*.py")}
    cycle = _cycle(graph)
    assert cycle is None, f"common/ has an import cycle: {' → '.join(cycle)}; move what both need into a leaf module"


def test_the_cycle_finder_finds_one():
    assert _cycle({"data": {"volumes"}, "volumes": {"datasets", "data"}, "datasets": set()}) == [
        "data",
        "volumes",
        "data",
    ]
