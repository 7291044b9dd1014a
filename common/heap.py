"""Keeping freed memory in the process: a C allocator setting for the PyTorch backend on Linux.

PyTorch's CPU tensors come from the C library's ``malloc``.  glibc serves
every block above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and unmaps it on
``free``, so a training step whose activations are tens of megabytes (``nin_d2l`` at batch 32:
36 MB for one block-0 activation) gets new, zeroed pages every time.  PyTorch's CPU tuning
guide answers this with jemalloc or tcmalloc preloaded; ``retain_freed_memory`` gets the same
from glibc itself, in-process, with ``mallopt``: large blocks come from the heap and freed ones
stay there for the next step.  It makes PyTorch's forward pass and training step of
``nin_d2l`` faster and leaves XLA:CPU's step as it was, so only the PyTorch backend calls it;
the cost is that the process keeps what it freed instead of returning it to the system (a
higher peak RSS).  The measured figures: frameworks/README.md, "Host settings".  On other C
libraries and systems (musl, macOS, Windows) this is a no-op.  Setting
``NIN_RETAIN_FREED_MEMORY=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes: return heap tops above 2 GB only

_done: bool | None = None


def retain_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed ones (glibc ``mallopt``), once per
    process.  Returns whether the setting is in force."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if sys.platform != "linux" or os.environ.get("NIN_RETAIN_FREED_MEMORY", "1") == "0":
        return _done
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no glibc (musl has no mallopt): nothing to tune
        return _done
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _done
