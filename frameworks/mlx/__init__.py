"""The MLX backend: ``NiN`` and ``nin_block`` in ``mlx.nn`` (channels-last), the adapter
functions and ``Trainer`` of the backend contract (``nin.frameworks.CONTRACT``,
frameworks/README.md).  Imported only when asked for: ``nin.get_backend("mlx")``.

On Linux MLX is its CPU build (``mlx-cpu``): one stream, whose operations run one after another
on one thread, with the reference (netlib) BLAS it ships for its matrix products; no
environment variable sizes a thread pool (docs/benchmarks.md, "MLX").
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
    # MLX's CPU backend reads no thread variable: its stream runs on one thread and its BLAS
    # (the reference netlib build in the mlx-cpu wheel) is single-threaded (measured, see above)
    thread_env=(),
    parts={"distributed": Needs()},
    lacks={
        "d2l_book": "the d2l book has no MLX version of its code (d2l.ai has PyTorch, MXNet, JAX and TensorFlow tabs)",
        "onnx_export": "MLX has no ONNX exporter of its own; write the graph with nin.onnx (nin export MODEL --format onnx)",
    },
    order=60,
    # an optimized CBLAS in front of the reference one MLX's Linux build ships (blas.py)
    prepare=blas.load,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
