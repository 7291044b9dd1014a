"""The backends, imported lazily: four frameworks and one inference runtime.

``import nin`` imports no framework.  ``get_backend("jax")`` imports ``nin.frameworks.jax``
(and so JAX) the first time it is asked for; a framework that is not installed makes only its
own backend unavailable, with a message naming the extra to install.

Every backend package exports exactly the names of ``CONTRACT`` (frameworks/README.md), each
from the file ``CONTRACT`` names, loaded when first used: ``nin.frameworks.torch.build`` imports
``nin.frameworks.torch.adapter``.  ``build(..., precision=...)`` takes one of the backend's
``backend_precisions``.

``onnxruntime`` runs the ONNX graph of ``nin.onnx``: it has the inference half of the
contract (``build``, ``load_state``, ``export_state``, ``forward``, ``intermediates``,
``param_count``) and no training (``backend_trains("onnxruntime")`` is False; its
``loss_and_grads`` and ``Trainer`` say so).  ``list_backends()`` names the four framework
backends, which hold the whole contract; ``list_runtimes()`` adds the inference runtimes, and
is what forward conformance, ``nin compare`` and ``nin conformance`` run over.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import numpy

from nin.errors import BackendUnavailable, UnknownNameError

from .record import CONTRACT, PRECISIONS, BackendRecord, Needs, contract_attribute  # noqa: F401

# backend name -> the top-level modules it needs
_REQUIRES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow",),
    "jax": ("jax", "flax", "optax"),
    "mxnet": ("mxnet",),
    "onnxruntime": ("onnx", "onnxruntime"),
}

# the extra of pyproject.toml that installs a backend, where it is not the backend's own name
_EXTRA = {"onnxruntime": "onnx"}

# the backends that train (Trainer, loss_and_grads); the others run inference only
_TRAINS = frozenset({"torch", "tensorflow", "jax", "mxnet"})

# backend name -> the compute precisions its ``build`` accepts.  "bf16" is mixed precision:
# float32 parameters and updates, bfloat16 arithmetic in the forward and backward passes.
_PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("float32", "bf16"),
    "tensorflow": ("float32",),
    "jax": ("float32", "bf16"),
    "mxnet": ("float32",),
    "onnxruntime": ("float32",),
}

# backend name -> the native deployment formats its ``export.py`` writes (``nin export``)
_EXPORT_FORMATS: dict[str, tuple[str, ...]] = {
    "torch": ("torchscript",),
    "tensorflow": ("savedmodel",),
    "jax": ("stablehlo",),
    "mxnet": ("gluon",),
}

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
    # an InferenceSession's intra-op pool (the adapter reads it when it creates a session)
    "onnxruntime": ("OMP_NUM_THREADS",),
}


def list_backends() -> list[str]:
    """The framework backends, installed or not: the whole contract, training included."""
    return [name for name in _REQUIRES if name in _TRAINS]


def list_runtimes() -> list[str]:
    """Everything that runs a NiN forward, installed or not: the framework backends, then
    the inference-only runtimes (onnxruntime)."""
    return list(_REQUIRES)


# backend name -> the largest NumPy major version its framework runs on
_NUMPY_BELOW: dict[str, int] = {"mxnet": 2}


def backend_trains(name: str) -> bool:
    """Whether a backend trains (``Trainer``, ``loss_and_grads``); onnxruntime does not."""
    _known(name)
    return name in _TRAINS


def _known(name: str) -> None:
    if name not in _REQUIRES:
        raise UnknownNameError(f"unknown backend {name!r}; known backends: {', '.join(_REQUIRES)}")


def missing_modules(name: str) -> list[str]:
    """The framework modules a backend needs that are not installed (found without importing)."""
    return [m for m in _REQUIRES[name] if importlib.util.find_spec(m) is None]


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run in this environment (a missing framework, a NumPy too new for
    it), with what to do; ``None`` when it can.  Found without importing the framework."""
    below = _NUMPY_BELOW.get(name)
    if below is not None and int(numpy.__version__.split(".")[0]) >= below:
        return (
            f"backend {name!r} needs NumPy < {below} (its framework's last release predates NumPy {below}) and this "
            f"environment has NumPy {numpy.__version__}; use the legacy environment (make setup → .venv/), "
            f"or pip install 'nin-suite[{name}]' into a NumPy {below - 1} environment"
        )
    missing = missing_modules(name)
    if missing:
        return (
            f"backend {name!r} needs {', '.join(missing)}, which is not installed; "
            f"install it with: pip install 'nin-suite[{_EXTRA.get(name, name)}]'"
        )
    return None


def available_backends() -> list[str]:
    """The framework backends that can run in this environment (checked without importing them)."""
    return [name for name in list_backends() if unavailable_reason(name) is None]


def available_runtimes() -> list[str]:
    """``list_runtimes()`` that can run in this environment (checked without importing them)."""
    return [name for name in _REQUIRES if unavailable_reason(name) is None]


def backend_precisions(name: str) -> tuple[str, ...]:
    """The compute precisions a backend's ``build`` accepts, "float32" first."""
    return _PRECISIONS[name]


def export_formats(name: str) -> tuple[str, ...]:
    """The native deployment formats a backend's ``export.export`` writes; () for onnxruntime,
    whose format is ONNX itself (``nin.onnx``)."""
    _known(name)
    return _EXPORT_FORMATS.get(name, ())


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
    _known(name)
    reason = unavailable_reason(name)
    if reason:
        raise BackendUnavailable(reason)
    try:
        backend = importlib.import_module(f"nin.frameworks.{name}")
        importlib.import_module(f"nin.frameworks.{name}.adapter")  # the framework itself, now
        return backend
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} failed to import ({e}); reinstall it with: pip install 'nin-suite[{_EXTRA.get(name, name)}]'"
        ) from e
