"""Which BLAS MLX's CPU build multiplies with: a host setting for the MLX backend, run by its
record's ``prepare`` hook (``load``), as ``nin.heap`` is one for the PyTorch backend.

On Linux, ``mlx-cpu`` links the reference (netlib) BLAS it ships
(``mlx_cpu.libs/libblas-*.so``: plain loops, one thread), and every matrix product and
convolution of MLX's CPU backend is a ``cblas_sgemm`` of it: 6 GFLOP/s for a 2048² float32
product on this project's 2-core machine, where NumPy's OpenBLAS and PyTorch's MKL reach
360 (docs/benchmarks.md, "MLX").  ``libmlx.so`` finds ``cblas_sgemm`` (and ``cblas_dgemm``,
``cblas_cgemm``) through the process's global symbol scope before its own dependencies, so an
optimized CBLAS loaded with ``RTLD_GLOBAL`` *before* ``import mlx`` serves MLX's products
instead — the same library, the same calls, nothing of MLX changed.

``NIN_MLX_BLAS`` chooses:

* unset or ``auto``: the first optimized CBLAS found (``CANDIDATES``): Intel MKL from the
  ``mkl`` wheel (``pip install mkl``), the MKL-ML library PaddlePaddle's wheel ships (the
  current environment installs it with the ``[paddle]`` extra), or a system OpenBLAS, MKL or
  BLIS (``ctypes.util.find_library``); MLX's own BLAS if none is found;
* ``reference``: MLX's own BLAS, nothing loaded;
* a path: that library (with the libraries in its folder that it needs, such as
  ``libiomp5.so``), refused with the reason if it does not load or lacks ``cblas_sgemm``.

What was chosen is ``chosen()``, shown in ``framework_version()`` (``nin backends``, every
``nin bench`` table), so a figure always says which BLAS it measured.  The choice is made once
per process, before MLX is imported; if ``mlx`` was imported before the suite's backend was
asked for, MLX's own BLAS stays and ``chosen()`` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nin.errors import BackendUnavailable

ENV = "NIN_MLX_BLAS"
# every CBLAS routine libmlx.so 0.32 imports (``nm -D -u libmlx.so``): all or none are replaced
ROUTINES = ("cblas_sgemm", "cblas_dgemm", "cblas_cgemm")
# One BLAS thread per call: the adapter already runs one MLX stream (a thread) per core, each on
# its piece of the batch, so its ``set_threads`` stays the process's thread count (with MKL-ML,
# nin_d2l batch 32: 1.79 s a step with one BLAS thread per stream, 1.72 s with two, 2026-12-06)
THREAD_SETTERS = ("MKL_Set_Num_Threads", "openblas_set_num_threads", "bli_thread_set_num_threads")


@dataclass(frozen=True)
class Choice:
    """The BLAS MLX multiplies with: ``path`` (``None``: MLX's own) and where it came from."""

    path: str | None
    source: str

    def describe(self) -> str:
        if self.path is None:
            return f"BLAS: MLX's reference BLAS ({self.source})"
        return f"BLAS: {Path(self.path).name} ({self.source})"


_chosen: Choice | None = None


def chosen() -> Choice:
    """What ``load`` chose in this process (``load`` runs first if it has not)."""
    if _chosen is None:
        load()
    assert _chosen is not None
    return _chosen


def _mkl_wheel() -> list[tuple[str, str]]:
    """``libmkl_rt`` of the ``mkl`` wheel (installed under ``sys.prefix/lib``)."""
    found = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    return [(found[0], "Intel MKL, the mkl wheel")] if found else []


def _paddle_mklml() -> list[tuple[str, str]]:
    """``libmklml_intel.so`` of PaddlePaddle's wheel, found without importing Paddle."""
    spec = importlib.util.find_spec("paddle")
    if spec is None or not spec.submodule_search_locations:
        return []
    for folder in spec.submodule_search_locations:
        lib = Path(folder) / "libs" / "libmklml_intel.so"
        if lib.is_file():
            return [(str(lib), "Intel MKL-ML, shipped in PaddlePaddle's wheel")]
    return []


def _system() -> list[tuple[str, str]]:
    out = []
    for name, what in (("openblas", "OpenBLAS"), ("mkl_rt", "Intel MKL"), ("blis", "BLIS")):
        found = ctypes.util.find_library(name)
        if found:
            out.append((found, f"the system's {what}"))
    return out


CANDIDATES = (_mkl_wheel, _paddle_mklml, _system)


def _open(path: str) -> ctypes.CDLL:
    """Load ``path`` into the global symbol scope, after the OpenMP runtime of its folder where
    there is one: MKL-ML names ``libiomp5.so`` without a path the loader would search (MKL's
    ``libmkl_rt`` loads its own parts)."""
    omp = Path(path).parent / "libiomp5.so"
    if omp.is_file():
        ctypes.CDLL(str(omp), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    missing = [r for r in ROUTINES if not hasattr(lib, r)]
    if missing:
        raise OSError(f"it does not export {', '.join(missing)}")
    for setter in THREAD_SETTERS:
        if hasattr(lib, setter):
            getattr(lib, setter)(1)
    return lib


def load() -> None:
    """Choose MLX's BLAS as ``NIN_MLX_BLAS`` says (see the module's docstring) and load it
    before MLX; run once per process by the record's ``prepare``."""
    global _chosen
    if _chosen is not None:
        return
    wanted = os.environ.get(ENV, "auto").strip() or "auto"
    if "mlx.core" in sys.modules:
        _chosen = Choice(None, "mlx was imported before the suite chose a BLAS")
        return
    if wanted == "reference":
        _chosen = Choice(None, f"{ENV}=reference")
        return
    if wanted != "auto":
        try:
            _open(wanted)
        except OSError as e:
            raise BackendUnavailable(
                f"{ENV}={wanted!r} cannot serve MLX's matrix products: {e}. Give the path of a CBLAS library "
                f"that exports {', '.join(ROUTINES)} (OpenBLAS, MKL's libmkl_rt), 'auto' to search for one, or "
                f"'reference' for MLX's own BLAS"
            ) from None
        _chosen = Choice(wanted, f"{ENV}")
        return
    for candidates in CANDIDATES:
        for path, source in candidates():
            try:
                _open(path)
            except OSError:
                continue
            _chosen = Choice(path, source)
            return
    _chosen = Choice(None, "no optimized CBLAS found: pip install mkl, or set NIN_MLX_BLAS to one")
