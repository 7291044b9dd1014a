"""The MLX backend: ``NiN`` and ``nin_block`` in ``mlx.nn`` (channels-last), the adapter
functions and ``Trainer`` of the backend contract (``nin.frameworks.CONTRACT``,
frameworks/README.md).  Imported only when asked for: ``nin.get_backend("mlx")``.

On Linux MLX is its CPU build (``mlx-cpu``): each stream runs its operations one after another
on one thread, and no environment variable sizes a thread pool, so the adapter splits a batch
over one stream per core (``adapter.set_threads``).  Its matrix products go to the reference
(netlib) BLAS the wheel ships unless the record's ``prepare`` (``nin.blas``) has put an
optimized CBLAS in front of it (docs/benchmarks.md, "MLX").
"""

from __future__ import annotations

from typing import Any

from nin import blas
from nin.frameworks.record import CONTRACT, BackendRecord, Needs, contract_attribute

RECORD = BackendRecord(
    name="mlx",
    requires=("mlx",),
    extra="mlx",
    export_formats=("mlxfn",),
    # MLX's CPU backend reads no thread variable: each stream runs on one thread, and the BLAS
    # (the wheel's reference one, or nin.blas's, its threads set to 1) runs on the caller's thread
    thread_env=(),
    parts={"distributed": Needs()},
    lacks={
        "d2l_book": "the d2l book has no MLX version of its code (d2l.ai has PyTorch, MXNet, JAX and TensorFlow tabs)",
        "onnx_export": "MLX has no ONNX exporter of its own; write the graph with nin.onnx (nin export MODEL --format onnx)",
    },
    order=60,
    # an optimized CBLAS in front of the reference one MLX's Linux build ships (nin.blas)
    prepare=blas.load,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
