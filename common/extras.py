"""The optional parts of the install: which extra of ``nin-suite`` brings which library, and
the one-line error when a command needs one that is missing.

The core (``pip install nin-suite``) is NumPy and safetensors.  Everything else is imported
only where it is used, through this module:

* ``progress``: tqdm (the per-epoch progress bar of ``nin train``) and matplotlib (its
  ``curves.png``); without them training runs, with no bar and no curves;
* ``pictures``: matplotlib and Pillow, for ``nin visualize``, ``nin train --visualize-every``
  and ``nin bench --plot``;
* ``video``: ``pictures`` and imageio-ffmpeg (which brings its own ffmpeg binary), for
  ``nin visualize --mp4``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra

# extra -> the modules it makes importable (pyproject.toml lists their distributions)
EXTRAS: dict[str, tuple[str, ...]] = {
    "progress": ("tqdm", "matplotlib"),
    "pictures": ("matplotlib", "PIL"),
    "video": ("matplotlib", "PIL", "imageio_ffmpeg"),
}


def optional_module(name: str) -> ModuleType | None:
    """The module ``name``, imported, or None where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def install_hint(extra: str) -> str:
    """The command that installs an extra: ``pip install 'nin-suite[pictures]'``."""
    return f"pip install 'nin-suite[{extra}]'"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """The module, imported, or a ``MissingExtra`` naming it, what needed it (``purpose``, e.g.
    ``"drawing pictures"``) and the extra that brings it."""
    found = optional_module(module)
    if found is None:
        raise MissingExtra(f"{purpose} needs {module}, which is not installed; {install_hint(extra)}")
    return found


def require_extra(extra: str, purpose: str) -> None:
    """Import every module of ``extra``, or raise ``MissingExtra`` for the first missing one."""
    for module in EXTRAS[extra]:
        require(module, extra, purpose)
