"""Writing files so that a reader never sees a torn one: the one helper behind saved weights
(``nin.weights``), training checkpoints, metrics and curves (``nin.train``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk (``fsync``) and
    rename it over ``path`` (``os.replace``).  Whenever the writer fails or the process dies, a
    reader sees the old file or the new one, never a torn one; on failure the temporary file is
    removed and the error propagates."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
