"""The four backends, imported lazily.

``import nin`` imports no framework.  ``get_backend("jax")`` imports ``nin.frameworks.jax``
(and so JAX) the first time it is asked for; a framework that is not installed makes only its
own backend unavailable, with a message naming the extra to install.

Every backend module exports the same names (the contract in DESIGN.md):
``nin_block``, ``NiN``, ``build``, ``load_state``, ``export_state``, ``forward``,
``intermediates``, ``param_count``, ``loss_and_grads``, ``framework_version``.
``build(..., precision=...)`` takes one of the backend's ``backend_precisions``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from nin.errors import BackendUnavailable, UnknownNameError

# backend name -> the top-level modules it needs
_REQUIRES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow",),
    "jax": ("jax", "flax", "optax"),
    "mxnet": ("mxnet",),
}

# backend name -> the compute precisions its ``build`` accepts.  "bf16" is mixed precision:
# float32 parameters and updates, bfloat16 arithmetic in the forward and backward passes.
_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("float32", "bf16"),
    "tensorflow": ("float32",),
    "jax": ("float32", "bf16"),
    "mxnet": ("float32",),
}
PRECISIONS = ("float32", "bf16")

# backend name -> the environment variables that size its thread pools, which each framework
# reads once, when it is imported or creates its CPU runtime: ``thread_env`` hands them to a
# process before that happens, the backend's ``set_threads`` covers what can change later.
_THREAD_ENV: dict[str, tuple[str, ...]] = {
    "torch": ("OMP_NUM_THREADS", "MKL_NUM_THREADS"),
    # TensorFlow's own pools (tensorflow/core/common_runtime/process_util.cc); oneDNN uses OpenMP
    "tensorflow": ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"),
    # XLA's CPU client sizes its Eigen pool from NPROC (xla/pjrt/utils.cc, DefaultThreadPoolSize)
    "jax": ("OMP_NUM_THREADS", "NPROC"),
    # oneDNN kernels use OpenMP; MXNET_CPU_WORKER_NTHREADS (engine workers running operators
    # side by side) stays at its default 1, so n OpenMP threads are n threads, not 1 + n·workers
    "mxnet": ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS"),
}


def list_backends() -> list[str]:
    """Every backend the suite knows, installed or not."""
    return list(_REQUIRES)


def missing_modules(name: str) -> list[str]:
    """The framework modules a backend needs that are not installed (found without importing)."""
    return [m for m in _REQUIRES[name] if importlib.util.find_spec(m) is None]


def available_backends() -> list[str]:
    """The backends whose frameworks are installed (checked without importing them)."""
    return [name for name in _REQUIRES if not missing_modules(name)]


def backend_precisions(name: str) -> tuple[str, ...]:
    """The compute precisions a backend's ``build`` accepts, "float32" first."""
    return _PRECISIONS[name]


def check_precision(backend: str, precision: str) -> str:
    """``precision`` if ``backend`` computes in it; otherwise an error naming the allowed values."""
    if precision not in PRECISIONS:
        raise UnknownNameError(f"unknown precision {precision!r}; known precisions: {', '.join(PRECISIONS)}")
    if precision not in _PRECISIONS[backend]:
        having = " and ".join(name for name, allowed in _PRECISIONS.items() if precision in allowed)
        raise UnknownNameError(
            f"{precision} is available for {having} only; the {backend} backend computes in "
            f"{', '.join(_PRECISIONS[backend])} (use precision='float32')"
        )
    return precision


def thread_env(name: str, threads: int) -> dict[str, str]:
    """The environment variables that give backend ``name`` ``threads`` threads, for a process
    that has not imported its framework yet (no framework is imported here)."""
    if name not in _THREAD_ENV:
        raise UnknownNameError(f"unknown backend {name!r}; known backends: {', '.join(_THREAD_ENV)}")
    return dict.fromkeys(_THREAD_ENV[name], str(threads))


def get_backend(name: str) -> ModuleType:
    """The adapter module of a backend, e.g. ``get_backend("torch").build(spec)``."""
    if name not in _REQUIRES:
        raise UnknownNameError(f"unknown backend {name!r}; known backends: {', '.join(_REQUIRES)}")
    missing = missing_modules(name)
    if missing:
        raise BackendUnavailable(
            f"backend {name!r} needs {', '.join(missing)}, which is not installed; "
            f"install it with: pip install 'nin-suite[{name}]'"
        )
    try:
        return importlib.import_module(f"nin.frameworks.{name}")
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} failed to import ({e}); reinstall it with: pip install 'nin-suite[{name}]'"
        ) from e
