"""The onnxruntime backend: a fifth runtime, inference only.  It runs the framework-free ONNX
graph of ``nin.onnx`` with the adapter functions of the backend contract that need no
training (frameworks/README.md).  Imported only when asked for:
``nin.get_backend("onnxruntime")``."""

from __future__ import annotations

from .adapter import (
    OnnxNiN,
    build,
    device_name,
    device_peak_mb,
    export_state,
    forward,
    framework_version,
    gpu_available,
    intermediates,
    load_state,
    loss_and_grads,
    param_count,
    run_file,
    set_threads,
    synchronize,
)

__all__ = [
    "OnnxNiN",
    "build",
    "device_name",
    "device_peak_mb",
    "export_state",
    "forward",
    "framework_version",
    "gpu_available",
    "intermediates",
    "load_state",
    "loss_and_grads",
    "param_count",
    "run_file",
    "set_threads",
    "synchronize",
]
