"""The TensorFlow/Keras 3 backend: ``NiN`` and ``nin_block`` (channels-last Keras code), the
adapter functions, which convert layouts, and ``Trainer`` of the backend contract
(``nin.frameworks.CONTRACT``, frameworks/README.md)."""

from __future__ import annotations

import os
from typing import Any

from nin.frameworks.record import CONTRACT, D2L, BackendRecord, Needs, contract_attribute


def _quiet_cpp_logs() -> None:
    """A host setting (frameworks/README.md, "Host settings"), made by the record's ``prepare``
    hook because TensorFlow reads it when it loads its C++ runtime: TensorFlow's C++ log lines
    below FATAL are not printed.  A value already in the environment wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    prepare=_quiet_cpp_logs,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
