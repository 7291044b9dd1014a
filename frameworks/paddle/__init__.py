"""The PaddlePaddle backend: ``NiN`` and ``nin_block`` (native ``paddle.nn.Layer``s, NCHW), the
adapter functions and ``Trainer`` of the backend contract (``nin.frameworks.CONTRACT``,
frameworks/README.md).  Imported only when asked for: ``nin.get_backend("paddle")``.

Paddle's import is done by the record's ``prepare`` hook (``_import_paddle``), with two host
settings that must be in place while ``libpaddle.so`` loads; see its docstring.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from nin.frameworks.record import CONTRACT, BackendRecord, Needs, contract_attribute

# The two lines Paddle's bootstrap prints on stderr whenever OMP_NUM_THREADS is above 1
# (paddle/base/__init__.py, ``__bootstrap__``)
_OMP_NOTICE = ("WARNING: OMP_NUM_THREADS set to ", "PLEASE USE OMP_NUM_THREADS WISELY.")


def _import_paddle() -> None:
    """Import Paddle with its shared libraries bound to their own symbols, quietly, and with
    the environment as it was.  The record's ``prepare`` hook: run once per process, before
    the backend's first ``import paddle``.

    *RTLD_DEEPBIND.*  Paddle 3.3.1's ``libphi_core.so`` and ``libpaddle.so`` carry their own
    copy of protobuf, and so does TensorFlow's ``libtensorflow_framework.so.2``.  Loaded after
    TensorFlow, ``libphi_core.so`` binds some protobuf symbols (``typeinfo for
    google::protobuf::Message``, seen with ``LD_DEBUG=bindings``) to TensorFlow's copy, and a
    static initialiser of ``libpaddle.so`` crashes in
    ``google::protobuf::internal::RepeatedPtrFieldBase::AddOutOfLineHelper`` (gdb,
    2026-12-06): ``import tensorflow; import paddle`` ends in SIGSEGV (torch, JAX and MLX
    before Paddle are harmless; Paddle before TensorFlow too).  ``RTLD_DEEPBIND`` makes the
    libraries this import loads look up their own symbols first; the flags are restored at
    once, so nothing else is loaded that way.  With it Paddle runs beside TensorFlow, torch,
    JAX and MLX in one process, as the suite's tests and ``nin compare`` run it.

    *What the import says.*  ``import paddle`` imports ``paddle.utils.cpp_extension``, which
    looks for ``ccache`` (used only to compile custom C++ operators, which the suite never
    does) and warns "No ccache found" where there is none: that one ``UserWarning`` is
    ignored.  With ``OMP_NUM_THREADS`` above 1 (``nin bench --threads 2`` sets it) Paddle's
    bootstrap prints a two-line notice on stderr that threads "will fail if this PaddlePaddle
    binary is compiled with OpenBlas" (this wheel's CPU math is MKL's, ``libmklml_intel.so``):
    those two lines are dropped, and anything else the import writes to stderr is passed on.

    *Its log.*  Paddle's C++ code logs through glog, whose INFO lines (the executor's "New
    Executor is Running" at every static program, the TCP store's connection retries of a
    data-parallel job) reach stderr; ``GLOG_minloglevel=1``, read by glog when
    ``libpaddle.so`` loads, keeps warnings and errors only.  A value already in the environment
    is kept (``GLOG_minloglevel=0`` shows everything).

    *The environment.*  The bootstrap also writes ``OMP_NUM_THREADS=1`` into ``os.environ``
    where it was unset, which every process the suite starts afterwards would inherit
    (``nin train --workers``' workers, ``nin bench``'s); it is unset again.  Paddle's own
    thread count is its ``set_threads`` (``adapter.set_threads``)."""
    os.environ.setdefault("GLOG_minloglevel", "1")
    omp = os.environ.get("OMP_NUM_THREADS")
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        with warnings.catch_warnings(), stderr_without(_OMP_NOTICE):
            warnings.filterwarnings("ignore", r"No ccache found", UserWarning, r"paddle\.utils\.cpp_extension")
            import paddle  # noqa: F401
    finally:
        sys.setdlopenflags(flags)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)


@contextlib.contextmanager
def stderr_without(starts: tuple[str, ...]) -> Iterator[None]:
    """Inside the block, what Python code writes to ``sys.stderr`` is held back; at its end it
    is written out less the lines that start with one of ``starts`` (notices Paddle prints
    with ``print``/``sys.stderr.write``, which no filter of ``warnings`` reaches)."""
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield
    finally:
        lines = held.getvalue().splitlines(keepends=True)
        sys.stderr.write("".join(line for line in lines if not line.startswith(starts)))


RECORD = BackendRecord(
    name="paddle",
    requires=("paddle",),
    extra="paddle",
    export_formats=("paddle_jit",),
    # Paddle's CPU kernels run on MKL (its bundled libmklml_intel) and OpenMP (libiomp5)
    thread_env=("OMP_NUM_THREADS", "MKL_NUM_THREADS"),
    parts={"d2l_book": Needs(), "distributed": Needs()},
    lacks={
        "onnx_export": (
            "Paddle's ONNX exporter is a separate package, paddle2onnx, which the [paddle] extra and the locks "
            "do not install; write the graph with nin.onnx (nin export MODEL --format onnx)"
        )
    },
    order=50,
    prepare=_import_paddle,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
