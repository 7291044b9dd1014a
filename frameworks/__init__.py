"""The four backends, imported lazily.

``import nin`` imports no framework.  ``get_backend("jax")`` imports ``nin.frameworks.jax``
(and so JAX) the first time it is asked for; a framework that is not installed makes only its
own backend unavailable, with a message naming the extra to install.

Every backend package exports exactly the names of ``CONTRACT`` (frameworks/README.md), each
from the file ``CONTRACT`` names, loaded when first used: ``nin.frameworks.torch.build`` imports
``nin.frameworks.torch.adapter``.  ``build(..., precision=...)`` takes one of the backend's
``backend_precisions``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

from nin.errors import BackendUnavailable, UnknownNameError

# The backend contract: public name -> the file of ``frameworks/<backend>/`` that defines it, the
# same in all four backends.  Adding a name to the contract is one line here (and the
# definition in each backend); every backend's ``__init__`` derives its ``__all__`` from this.
CONTRACT: dict[str, str] = {
    "nin_block": "model",
    "NiN": "model",
    "build": "adapter",
    "load_state": "adapter",
    "export_state": "adapter",
    "forward": "adapter",
    "intermediates": "adapter",
    "param_count": "adapter",
    "loss_and_grads": "adapter",
    "framework_version": "adapter",
    "gpu_available": "adapter",
    "Trainer": "train",
}


def contract_attribute(package: str, name: str) -> Any:
    """Public name ``name`` of backend package ``package`` (e.g. "nin.frameworks.torch"),
    imported from the file ``CONTRACT`` gives it: each backend's module ``__getattr__``."""
    if name not in CONTRACT:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{package}.{CONTRACT[name]}"), name)


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
        backend = importlib.import_module(f"nin.frameworks.{name}")
        importlib.import_module(f"nin.frameworks.{name}.adapter")  # the framework itself, now
        return backend
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} failed to import ({e}); reinstall it with: pip install 'nin-suite[{name}]'"
        ) from e
