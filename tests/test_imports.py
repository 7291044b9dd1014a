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


# The frameworks and runtimes whose code lives in frameworks/<name>/ only: every module the
# backends' records name, and two that come with a framework, which no record needs.  ``onnx``
# (the file format: protobuf messages, no runtime) is not among them: nin.onnx writes the graph with it.
FRAMEWORKS = set(nin.frameworks.framework_modules()) - {"onnx"} | {"tf_keras", "torchvision"}


def _top_level_imports(path: Path) -> dict[str, int]:
    """Every absolute module ``path`` imports anywhere (top level or inside a function), by its
    first component, with the line of its first import."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def test_common_imports_no_framework():
    offenders = [
        f"{path.name}:{line} imports {module}"
        for path in sorted(COMMON.glob("*.py"))
        for module, line in _top_level_imports(path).items()
        if module in FRAMEWORKS
    ]
    assert not offenders, (
        "framework code belongs in frameworks/<name>/, reached through the backend contract: " + "; ".join(offenders)
    )


def test_the_framework_finder_sees_a_lazy_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import numpy\n\ndef f():\n    from torch.nn import functional\n", encoding="utf-8")
    assert _top_level_imports(source) == {"numpy": 1, "torch": 4}


def _private_adapter_names(path: Path) -> list[str]:
    """The private names (``_x``) ``path`` imports from an adapter, or reaches as ``adapter._x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "adapter":
            found += [f"{path.parent.name}/{path.name}:{node.lineno} imports {a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "adapter":
            found += [f"{path.parent.name}/{path.name}:{node.lineno} uses adapter.{node.attr}"]
    return [entry for entry in found if entry.rsplit(" ", 1)[-1].split(".")[-1].startswith("_")]


def test_backend_files_use_only_the_public_adapter():
    """train.py, distributed.py, export.py and d2l_book.py of every backend build on the public
    names of their adapter (the contract), never on its private helpers."""
    frameworks = Path(nin.frameworks.__file__).parent
    offenders = [
        entry
        for backend in nin.list_backends()
        for path in sorted((frameworks / backend).glob("*.py"))
        if path.stem != "adapter"
        for entry in _private_adapter_names(path)
    ]
    assert not offenders, "a private adapter helper used outside its file: " + "; ".join(offenders)


def test_the_private_name_finder_finds_one(tmp_path):
    source = tmp_path / "train.py"
    source.write_text("from .adapter import build, _tensor\nfrom . import adapter\nadapter._device('cpu')\n")
    assert _private_adapter_names(source) == [
        f"{tmp_path.name}/train.py:1 imports _tensor",
        f"{tmp_path.name}/train.py:3 uses adapter._device",
    ]
