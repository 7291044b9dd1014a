"""The old public names, kept for one release after a rename: each use warns with a
``DeprecationWarning`` that names the new name (issue 25: names that explain themselves).

Two shapes: a renamed module stays importable as a shim that calls :func:`moved` once when it is
imported; a renamed function or class stays an attribute of its module through
:func:`renamed`, which serves the module's ``__getattr__``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def warn(old: str, new: str) -> None:
    """One ``DeprecationWarning``: ``old`` is deprecated, use ``new``."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}", DeprecationWarning, 3)


def moved(old: str, new: str) -> None:
    """A module shim's import: module ``old`` is now ``new``."""
    warn(old, new)


def renamed(module: str, names: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that answers each old name of ``names`` (old -> new) with the
    object ``namespace`` holds under the new one, warning; other names raise AttributeError."""

    def __getattr__(name: str) -> Any:
        if name in names:
            warn(f"{module}.{name}", f"{module}.{names[name]}")
            return namespace[names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
