"""The JAX/Flax backend: ``NiN`` and ``nin_block`` in ``flax.linen`` (channels-last), the
adapter functions (whose model is an ``adapter.FlaxNiN``) and ``Trainer`` of the backend
contract (``nin.frameworks.CONTRACT``, frameworks/README.md).  Imported only when asked for:
``nin.get_backend("jax")``."""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

from nin.frameworks.record import CONTRACT, D2L, BackendRecord, Needs, contract_attribute

__all__ = list(CONTRACT)

# A host setting (frameworks/README.md, "Host settings"), made by the record's ``prepare`` hook,
# before the backend first imports JAX, because XLA reads XLA_FLAGS once, when JAX creates its
# first client.  jaxlib 0.10 routes CPU convolutions through YNNPACK fusions, and nin_d2l's training
# step is slower than on jaxlib 0.7.1 with them and as fast without them (measured:
# docs/environments.md, "JAX: 0.7.1 against today's release").  XLA aborts the process on a
# flag it does not know, so the flag is set only for the jaxlib releases it was measured on,
# never where XLA_FLAGS already names it, and not with NIN_XLA_DEFAULTS=1.
_XLA_CPU_FLAGS = {(0, 10): "--xla_cpu_experimental_ynn_fusion_type="}


def _jaxlib_release() -> tuple[int, int] | None:
    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def _set_xla_cpu_flags() -> None:
    flag = _XLA_CPU_FLAGS.get(_jaxlib_release())
    current = os.environ.get("XLA_FLAGS", "")
    if flag is None or os.environ.get("NIN_XLA_DEFAULTS") == "1" or flag.split("=")[0] in current:
        return
    os.environ["XLA_FLAGS"] = f"{current} {flag}".strip()


RECORD = BackendRecord(
    name="jax",
    requires=("jax", "jaxlib", "flax", "optax"),
    extra="jax",
    precisions=("float32", "bf16"),
    export_formats=("stablehlo",),
    # XLA's CPU client sizes its Eigen pool from NPROC (xla/pjrt/utils.cc, DefaultThreadPoolSize)
    thread_env=("OMP_NUM_THREADS", "NPROC"),
    gpu_probe=True,
    parts={"d2l_book": D2L, "distributed": Needs()},
    lacks={
        "onnx_export": "JAX has no ONNX exporter of its own; write the graph with nin.onnx (nin export MODEL --format onnx)"
    },
    order=30,
    prepare=_set_xla_cpu_flags,
)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
