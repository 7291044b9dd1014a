"""Writing files: so that a reader never sees a torn one, with the permissions a plain write
would give, and to output paths checked before the work starts.

``atomic_write`` is the one helper behind saved weights (``nin.weights``), ONNX graphs
(``nin.onnx``), training checkpoints, metrics and curves (``nin.train``); ``staging_beside``
lets ``nin export`` build a framework's file or folder the same way.  ``check_output_file``
and ``check_output_folder`` (and their argparse types) let every command that writes refuse an
output it could not write before it computes anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError


def _umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where Linux gives it (setting and
    restoring it, the only portable way, briefly changes it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_write_mode(path: str | Path) -> int:
    """The permission bits ``open(path, "w")`` leaves: an existing file's own, else 0o666 less
    the umask (0o644 under the usual umask 0o022)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk (``fsync``) and
    rename it over ``path`` (``os.replace``).  Whenever the writer fails or the process dies, a
    reader sees the old file or the new one, never a torn one; on failure the temporary file is
    removed and the error propagates.  The file gets the permissions a plain write would give
    (``plain_write_mode``), not the temporary file's private 0o600.  A temporary file left by a
    killed process (``{name}.*.tmp``) is never reused: each write makes a new one."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, plain_write_mode(path))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextmanager
def staging_beside(path: str | Path) -> Iterator[Path]:
    """A fresh private folder beside ``path`` (``{name}.*.tmp``) and, inside it, the name
    ``path`` has, for a writer that makes a file or a folder there by its own means; it is
    created by that writer, so it gets plain permissions.  The caller moves it into place
    (``place``); the folder and whatever is left in it are removed when the block ends.  A
    staging folder left by a killed process is never reused."""
    path = Path(path)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp"))
    try:
        yield folder / path.name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def place(staged: Path, path: Path) -> Path:
    """Move a finished ``staged`` file or folder to ``path``: a file replaces a file atomically;
    a folder is renamed, and only where nothing is at ``path``."""
    if staged.is_dir():
        if path.exists():
            raise OutputError(f"{path} already exists; remove it or choose another path (a folder replaces nothing)")
        staged.rename(path)
    else:
        os.replace(staged, path)
    return path


# -- output paths, checked before the work ---------------------------------------------------------


def _check_writable(folder: Path, path: Path) -> None:
    """Create and remove a file in ``folder``: the one test that answers for permissions,
    read-only mounts and ACLs alike, whoever runs it."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".nin-write-test-")
    except OSError as e:
        raise OutputError(
            f"cannot write {path}: creating a file in {folder} fails ({e.strerror}); choose a folder you can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path) -> Path:
    """``path`` as a place a command can write a file (or a new folder) to: its folder exists
    and accepts new files, and ``path`` is not an existing folder; else an ``OutputError``."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is an existing folder; remove it or choose another path")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {path}: its folder {folder} {what}; create it first or choose another path")
    _check_writable(folder, path)
    return path


def check_output_folder(path: str | Path) -> Path:
    """``path`` as a folder a command can fill (creating it and missing parents): it is a
    folder or does not exist yet, and the nearest folder that exists accepts new files; else
    an ``OutputError``."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write into {path}: {existing} is a file, not a folder; choose another path")
    _check_writable(existing, path)
    return path


def _argument(check: Callable[[str], Path], text: str) -> str:
    try:
        check(text)
    except OutputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def output_file(text: str) -> str:
    """An argparse ``type``: ``check_output_file`` while the command line is parsed."""
    return _argument(check_output_file, text)


def output_folder(text: str) -> str:
    """An argparse ``type``: ``check_output_folder`` while the command line is parsed."""
    return _argument(check_output_folder, text)
