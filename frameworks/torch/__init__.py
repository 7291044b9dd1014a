"""The PyTorch backend: ``NiN`` and ``nin_block`` (native ``nn.Module``s), the adapter
functions and ``Trainer`` of the backend contract (``nin.frameworks.CONTRACT``,
frameworks/README.md)."""

from __future__ import annotations

from typing import Any

from nin.frameworks.record import CONTRACT, BackendRecord, Needs, contract_attribute

RECORD = BackendRecord(
    name="torch",
    requires=("torch",),
    extra="torch",
    precisions=("float32", "bf16"),
    export_formats=("torchscript",),
    thread_env=("OMP_NUM_THREADS", "MKL_NUM_THREADS"),
    gpu_probe=True,
    parts={
        "d2l_book": Needs(),
        "distributed": Needs(),
        "onnx_export": Needs(("onnx",), "pip install 'nin-suite[onnx]'"),
    },
    order=10,
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
