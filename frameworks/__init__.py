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

import numpy

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


def list_backends() -> list[str]:
    """Every backend the suite knows, installed or not."""
    return list(_REQUIRES)


# backend name -> the largest NumPy major version its framework runs on
_NUMPY_BELOW: dict[str, int] = {"mxnet": 2}


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
            f"install it with: pip install 'nin-suite[{name}]'"
        )
    return None


def available_backends() -> list[str]:
    """The backends that can run in this environment (checked without importing their frameworks)."""
    return [name for name in _REQUIRES if unavailable_reason(name) is None]


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


def get_backend(name: str) -> ModuleType:
    """The adapter module of a backend, e.g. ``get_backend("torch").build(spec)``."""
    if name not in _REQUIRES:
        raise UnknownNameError(f"unknown backend {name!r}; known backends: {', '.join(_REQUIRES)}")
    reason = unavailable_reason(name)
    if reason:
        raise BackendUnavailable(reason)
    try:
        return importlib.import_module(f"nin.frameworks.{name}")
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} failed to import ({e}); reinstall it with: pip install 'nin-suite[{name}]'"
        ) from e
