"""The PyTorch backend: ``NiN`` and ``nin_block`` (native ``nn.Module``s) and the adapter
functions of the backend contract (frameworks/README.md)."""

from __future__ import annotations

from .adapter import (
    build,
    device_name,
    device_peak_mb,
    export_state,
    forward,
    framework_version,
    gemm_probe,
    gpu_available,
    intermediates,
    load_state,
    loss_and_grads,
    param_count,
    set_threads,
    synchronize,
)
from .model import NiN, nin_block

__all__ = [
    "NiN",
    "build",
    "device_name",
    "device_peak_mb",
    "export_state",
    "forward",
    "framework_version",
    "gemm_probe",
    "gpu_available",
    "intermediates",
    "load_state",
    "loss_and_grads",
    "nin_block",
    "param_count",
    "set_threads",
    "synchronize",
]
