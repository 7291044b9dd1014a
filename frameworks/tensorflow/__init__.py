"""The TensorFlow/Keras 3 backend: ``NiN`` and ``nin_block`` (channels-last Keras code) and the
conformance adapter (``build``, ``load_state``, ``forward``, ...), which converts layouts."""

from __future__ import annotations

from .adapter import (
    build,
    export_state,
    forward,
    framework_version,
    gpu_available,
    intermediates,
    load_state,
    loss_and_grads,
    param_count,
)
from .model import NiN, nin_block

__all__ = [
    "NiN",
    "build",
    "export_state",
    "forward",
    "framework_version",
    "gpu_available",
    "intermediates",
    "load_state",
    "loss_and_grads",
    "nin_block",
    "param_count",
]
