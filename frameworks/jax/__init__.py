"""The JAX/Flax backend: ``NiN`` and ``nin_block`` in ``flax.linen`` (channels-last), and the
conformance adapter (``build``, ``forward``, ...).  Imported only when asked for:
``nin.get_backend("jax")``."""

from __future__ import annotations

from .adapter import (
    FlaxNiN,
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
    "FlaxNiN",
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
