"""The MXNet/Gluon backend: ``NiN`` and ``nin_block`` (native ``gluon.HybridBlock``s), the
adapter functions and ``Trainer`` of the backend contract (``nin.frameworks.CONTRACT``,
frameworks/README.md).  Imported only when asked for: ``nin.get_backend("mxnet")``.

Importing MXNet drops PyTorch in the same process to one intra-op thread
(``torch.get_num_threads()`` goes from 2 to 1 on a 2-core machine, in either import order);
this backend leaves torch's thread count alone, so a process that uses both and times torch
should call ``torch.set_num_threads`` itself.
"""

from __future__ import annotations

from typing import Any

import numpy

from nin.frameworks.record import CONTRACT, D2L, BackendRecord, Needs, contract_attribute


def _restore_numpy_bool() -> None:
    """MXNet 1.9.1 is retired upstream and still uses the alias ``numpy.bool``, which NumPy 1.24
    removed; restore it (the builtin, as NumPy < 1.24 had it) before the first ``import mxnet``,
    or importing MXNet fails on NumPy 1.24-1.26.  NumPy 2 has ``numpy.bool`` again (its boolean
    scalar type), which is left alone.  The record's ``prepare`` hook: run before the backend
    first imports MXNet, not when its record is read."""
    if numpy.lib.NumpyVersion(numpy.__version__) < "2.0.0":
        numpy.bool = bool


RECORD = BackendRecord(
    name="mxnet",
    requires=("mxnet",),
    extra="mxnet",
    export_formats=("gluon",),
    # oneDNN kernels use OpenMP; MXNET_CPU_WORKER_NTHREADS (engine workers running operators
    # side by side) stays at its default 1, so n OpenMP threads are n threads, not 1 + n·workers
    thread_env=("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS"),
    numpy_below=2,  # MXNet 1.9.1, its last release, predates NumPy 2
    parts={"d2l_book": D2L, "distributed": Needs()},
    lacks={
        "onnx_export": (
            "MXNet 1.9.1's ONNX exporter (mx.onnx.export_model) imports onnx.mapping, which onnx removed in 1.16; "
            "write the graph with nin.onnx instead (nin export MODEL --format onnx)"
        )
    },
    order=40,
    prepare=_restore_numpy_bool,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
