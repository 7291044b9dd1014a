"""The onnxruntime backend: an inference-only runtime.  It runs the framework-free ONNX graph of
``nin.onnx`` with the adapter functions of the backend contract that need no training
(``nin.frameworks.record.INFERENCE``, frameworks/README.md), and two names of its own:
``OnnxNiN`` (its model) and ``run_file`` (any ONNX file with ``nin.onnx``'s input and output
names).  Imported only when asked for: ``nin.get_backend("onnxruntime")``."""

from __future__ import annotations

from typing import Any

from nin.frameworks.record import BackendRecord, contract_attribute

RECORD = BackendRecord(
    name="onnxruntime",
    requires=("onnx", "onnxruntime"),
    extra="onnx",
    trains=False,
    # an InferenceSession's intra-op pool (the adapter reads it when it creates a session)
    thread_env=("OMP_NUM_THREADS",),
    lacks={
        "d2l_book": "onnxruntime runs ONNX graphs; the d2l book has no onnxruntime code",
        "distributed": "onnxruntime runs inference only: there is nothing to train",
        "onnx_export": "onnxruntime's model is the ONNX graph of nin.onnx (nin export MODEL --format onnx)",
    },
    order=10,
)

_NAMES = {**RECORD.contract(), "OnnxNiN": "adapter", "run_file": "adapter"}
__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name, _NAMES)


def __dir__() -> list[str]:
    return __all__
