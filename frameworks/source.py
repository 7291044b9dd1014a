"""Backends' source code, read from their files without importing their frameworks.

The tutorials and the website show each framework's code side by side (``nin_block``, the model,
the training step, the data-parallel lines); they take it from the backend's own files through
these functions, so what they show is what runs.  A backend's file is found with
``importlib.util.find_spec`` (its package's ``__init__``, which imports no framework, is the
only code run); the code is cut out of the file with ``ast``.
"""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from dataclasses import dataclass
from pathlib import Path

from nin.errors import NinError

from . import backend_package


@dataclass(frozen=True)
class Snippet:
    """A piece of a backend's file: its code (dedented), the file and the first line's number."""

    code: str
    path: Path
    first_line: int


def source_path(backend: str, file: str) -> Path:
    """The path of file ``file`` (without ``.py``) of backend ``backend``'s package."""
    module = f"{backend_package(backend)}.{file}"
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise NinError(f"backend {backend!r} has no file {file}.py (no module {module})")
    return Path(spec.origin)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _find(body: list[ast.stmt], name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return node
    return None


def _snippet(path: Path, lines: list[str], node: ast.AST) -> Snippet:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    code = textwrap.dedent("\n".join(lines[first - 1 : node.end_lineno]))
    return Snippet(code, path, first)


def definition(backend: str, file: str, name: str, with_classes: bool = False) -> list[Snippet] | None:
    """The source of the top-level function or class ``name`` (or ``Class.method``) of a
    backend's file, or None where the file does not define it.  ``with_classes`` adds the
    classes of the same file that its code names (Flax's ``nin_block`` returns an ``MlpConv``),
    in the file's order."""
    path = source_path(backend, file)
    tree = _tree(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    outer, _, inner = name.partition(".")
    node = _find(tree.body, outer)
    if node is not None and inner:
        node = _find(node.body, inner) if isinstance(node, ast.ClassDef) else None
    if node is None:
        return None
    found = [node]
    if with_classes:
        named = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        found += [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in named and n is not node]
        found.sort(key=lambda n: n.lineno)
    return [_snippet(path, lines, n) for n in found]


def docstring_code(backend: str, file: str) -> list[Snippet]:
    """The indented code lines of a backend file's module docstring (how ``distributed.py``
    shows its engine in a few lines), one snippet per run of consecutive lines."""
    path = source_path(backend, file)
    tree = _tree(path)
    doc = ast.get_docstring(tree, clean=False)
    if not doc:
        raise NinError(f"{path} has no module docstring to show code from")
    start = tree.body[0].lineno  # the docstring's first line (a module docstring is not indented)
    runs: list[list[tuple[int, str]]] = []
    for number, line in enumerate(doc.splitlines(), start):
        if not line.startswith("    "):
            continue
        if runs and runs[-1][-1][0] == number - 1:
            runs[-1].append((number, line))
        else:
            runs.append([(number, line)])
    if not runs:
        raise NinError(f"{path}: its module docstring holds no indented code lines")
    return [Snippet(textwrap.dedent("\n".join(line for _, line in run)), path, run[0][0]) for run in runs]
