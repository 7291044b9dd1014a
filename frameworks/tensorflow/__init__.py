"""The TensorFlow/Keras 3 backend: ``NiN`` and ``nin_block`` (channels-last Keras code), the
adapter functions, which convert layouts, and ``Trainer`` of the backend contract
(``nin.frameworks.CONTRACT``, frameworks/README.md)."""

from __future__ import annotations

from typing import Any

from nin.frameworks.record import CONTRACT, D2L, BackendRecord, Needs, contract_attribute

RECORD = BackendRecord(
    name="tensorflow",
    requires=("tensorflow", "keras"),
    extra="tensorflow",
    export_formats=("savedmodel",),
    # TensorFlow's own pools (tensorflow/core/common_runtime/process_util.cc); oneDNN uses OpenMP
    thread_env=("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"),
    parts={
        "d2l_book": D2L,
        "distributed": Needs(),
        "onnx_export": Needs(("tf2onnx",), "pip install 'nin-suite[onnx]'"),
    },
    order=20,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
