"""The MXNet/Gluon backend: ``NiN`` and ``nin_block`` (native ``gluon.HybridBlock``s) and the
adapter functions of the backend contract (frameworks/README.md).  Imported only when asked
for: ``nin.get_backend("mxnet")``.

Importing MXNet drops PyTorch in the same process to one intra-op thread
(``torch.get_num_threads()`` goes from 2 to 1 on a 2-core machine, in either import order);
this backend leaves torch's thread count alone, so a process that uses both and times torch
should call ``torch.set_num_threads`` itself.
"""

from __future__ import annotations

import numpy

# MXNet 1.9.1 is retired upstream and still uses the alias ``numpy.bool``, which NumPy 1.24
# removed; restore it (the builtin, as NumPy < 1.24 had it) before the first ``import mxnet``,
# which happens in the submodules below, or importing MXNet fails on NumPy 1.26.
numpy.bool = bool

from .adapter import (  # noqa: E402
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
from .model import NiN, nin_block  # noqa: E402

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
