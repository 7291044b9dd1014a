"""The backend contract as data, and the record each backend declares (framework-free).

Every backend package, in this repository (``frameworks/<name>/``) or outside it (found through
the ``nin.backends`` entry-point group), defines ``RECORD = BackendRecord(...)`` in its
``__init__.py``, which imports no framework: the registry (``nin.frameworks``) reads the record
without importing the framework, and imports the framework only when the backend is used.

``CONTRACT`` names every public name a framework backend exports and the file that defines it;
``INFERENCE`` the part of it an inference-only runtime (``trains=False``) has; ``OPTIONAL_PARTS``
the parts a backend may have or lack, which its record declares (``parts`` / ``lacks``) and
``nin.frameworks.get_part`` reaches.  frameworks/README.md explains each name.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nin.errors import NinError, UnknownNameError

# The backend contract: public name -> the file of the backend package that defines it, the same
# in every framework backend.  Adding a name to the contract is one line here (and the
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
    "gpu_missing_reason": "adapter",
    "Trainer": "train",
    # the native half: the framework's own objects, which train.py and distributed.py build on
    "to_native": "adapter",
    "from_native": "adapter",
    "native_parameters": "adapter",
    "native_input": "adapter",
    "native_labels": "adapter",
    "compute_scope": "adapter",
    "set_threads": "adapter",
    "gemm_probe": "adapter",
    "device_peak_mb": "adapter",
    "device_name": "adapter",
    "synchronize": "adapter",
    "FORMATS": "export",
    "export_model": "export",
    "run_exported": "export",
    "export_onnx": "export",
}

# The names of ``CONTRACT`` an inference-only runtime (``BackendRecord.trains`` False, e.g.
# onnxruntime) exports, all from its adapter; its ``loss_and_grads`` raises, saying so.
INFERENCE: tuple[str, ...] = (
    "build",
    "load_state",
    "export_state",
    "forward",
    "intermediates",
    "param_count",
    "loss_and_grads",
    "framework_version",
    "gpu_available",
    "gpu_missing_reason",
    "set_threads",
    "device_peak_mb",
    "device_name",
    "synchronize",
)


@dataclass(frozen=True)
class Part:
    """An optional part of a framework backend: the file that holds it and the names it defines."""

    file: str
    names: tuple[str, ...]
    title: str


# The optional parts of a framework backend; its record says which it has.  "onnx_export" is the
# framework's own ONNX exporter behind ``export.export_onnx`` (a contract name every framework
# backend defines: where the record lacks the part, it raises ``BackendUnavailable`` with the
# record's reason).
OPTIONAL_PARTS: dict[str, Part] = {
    "d2l_book": Part(
        "d2l_book",
        ("build", "param_count", "layer_outputs", "forward", "make_train_step"),
        "the d2l book's own NiN (d2l_book.py)",
    ),
    "distributed": Part(
        "distributed", ("initialize", "Trainer", "shutdown"), "data-parallel training (distributed.py)"
    ),
    "onnx_export": Part("export", ("export_onnx",), "an ONNX exporter of its framework's own (export.export_onnx)"),
}

# Every compute precision a backend may accept.  "bf16" is mixed precision: float32 parameters
# and updates, bfloat16 arithmetic in the forward and backward passes.
PRECISIONS = ("float32", "bf16")


@dataclass(frozen=True)
class Needs:
    """What a backend's optional part needs beyond the backend's own ``requires``: top-level
    modules (found without importing them) and how to install them."""

    modules: tuple[str, ...] = ()
    install: str = ""  # what to run, e.g. "pip install 'nin-suite[onnx]'"


# what a d2l_book part that imports the book's own package needs
D2L = Needs(("d2l",), "pip install --no-deps d2l==1.0.3 (make setup does; its metadata pins ancient releases)")


def _frozen(mapping: Mapping) -> Mapping:
    return types.MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class BackendRecord:
    """What a backend is and has, declared in its own package as ``RECORD`` and read by the
    registry without importing its framework.

    ``name``: the backend's name (``get_backend(name)``, ``--backends name``): its folder name in
    this repository, its entry point's name outside.  ``requires``: the top-level modules its
    framework needs.  ``extra``: the extra of its distribution that installs them
    (``pip install 'nin-suite[extra]'``; "" where the plain install has them).  ``trains``: the
    whole ``CONTRACT`` (model, adapter, train, export); False for an inference-only runtime, which
    has the ``INFERENCE`` names of an adapter only.  ``precisions``: what ``build(precision=...)``
    accepts, "float32" first.  ``export_formats``: the native deployment formats its
    ``export.export_model`` writes (``nin export --format``).  ``thread_env``: the environment
    variables that size its framework's thread pools before import (``thread_env``).
    ``numpy_below``: the NumPy major version its framework no longer runs on, or None.
    ``gpu_probe``: it runs on a GPU where one is visible: ``nin bench --device gpu`` probes its
    GEMM and the GPU checks cover it.  ``parts``: the optional parts (``OPTIONAL_PARTS``) it
    has, each with what it needs beyond ``requires``; ``lacks``: every other optional part, with
    the one-line reason ``get_part`` gives when it is asked for (a backend that trains states one
    for each part it lacks).  ``order``: where it stands in listings (lower first; framework
    backends before inference-only runtimes).  ``prepare``: a function run once per process
    before the backend's framework is first imported (by ``get_backend`` or a contract name of
    its package), for the host settings that must precede the import; reading the record runs
    nothing.
    """

    name: str
    requires: tuple[str, ...]
    extra: str
    trains: bool = True
    precisions: tuple[str, ...] = ("float32",)
    export_formats: tuple[str, ...] = ()
    thread_env: tuple[str, ...] = ("OMP_NUM_THREADS",)
    numpy_below: int | None = None
    gpu_probe: bool = False
    parts: Mapping[str, Needs] = field(default_factory=dict, hash=False)
    lacks: Mapping[str, str] = field(default_factory=dict, hash=False)
    order: int = 100
    prepare: Callable[[], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", _frozen(self.parts))
        object.__setattr__(self, "lacks", _frozen(self.lacks))
        where = f"the record of backend {self.name!r}"
        if not self.name.isidentifier():
            raise NinError(f"{where}: its name must be a Python identifier (it is a package name); got {self.name!r}")
        for part in [*self.parts, *self.lacks]:
            if part not in OPTIONAL_PARTS:
                raise UnknownNameError(
                    f"{where} names part {part!r}; known optional parts: {', '.join(OPTIONAL_PARTS)}"
                )
        both = sorted(set(self.parts) & set(self.lacks))
        unstated = [part for part in OPTIONAL_PARTS if part not in self.parts and part not in self.lacks]
        if both:
            raise NinError(f"{where} both has and lacks {', '.join(both)}; keep each part in one of parts and lacks")
        if self.trains and unstated:
            raise NinError(f"{where} neither has nor lacks {', '.join(unstated)}; add each to parts or to lacks")
        if not self.trains and self.parts:
            raise NinError(f"{where}: an inference-only backend (trains=False) has no optional parts")
        if not self.precisions or self.precisions[0] != "float32" or not set(self.precisions) <= set(PRECISIONS):
            raise UnknownNameError(
                f"{where} lists precisions {self.precisions}; expected 'float32' first, then any of {PRECISIONS[1:]}"
            )
        if self.export_formats and not self.trains:
            raise NinError(f"{where}: an inference-only backend (trains=False) has no export.py, so no export formats")

    def contract(self) -> dict[str, str]:
        """The public names this backend exports, each with the file that defines it."""
        return dict(CONTRACT) if self.trains else {name: CONTRACT[name] for name in INFERENCE}

    def files(self) -> list[str]:
        """The files (without ``.py``) its package holds besides ``__init__``: the contract's
        and those of its optional parts."""
        files = dict.fromkeys(self.contract().values())
        files.update(dict.fromkeys(OPTIONAL_PARTS[part].file for part in self.parts))
        return sorted(files)


_PREPARED: set[str] = set()


def prepare(package: str) -> None:
    """Run the ``prepare`` hook of backend package ``package``'s record, once per process."""
    if package not in _PREPARED:
        hook = importlib.import_module(package).RECORD.prepare
        if hook is not None:
            hook()
        _PREPARED.add(package)


def contract_attribute(package: str, name: str, names: Mapping[str, str] = CONTRACT) -> Any:
    """Public name ``name`` of backend package ``package`` (e.g. "nin.frameworks.torch"),
    imported from the file ``names`` (the contract) gives it, after the record's ``prepare``:
    each backend's module ``__getattr__``."""
    if name not in names:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    prepare(package)
    return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
