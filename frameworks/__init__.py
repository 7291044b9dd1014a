"""The registry of backends: it reads each backend's record and imports a framework only when
its backend is used.

A backend is a package with ``RECORD = nin.frameworks.record.BackendRecord(...)`` in its
``__init__.py``, which imports no framework, and the files and names of the backend contract
(``nin.frameworks.record.CONTRACT``, frameworks/README.md).  The registry finds them in two
places: every sub-package of ``nin.frameworks`` (``frameworks/<name>/`` of this repository), and
every package named by an entry point of the ``nin.backends`` group of any installed
distribution (``[project.entry-points."nin.backends"] name = "package"``), the way pytest finds
its plugins.  Reading a record imports only the backend's ``__init__``; ``get_backend("jax")``
imports JAX the first time it is asked for.  A framework that is not installed makes only its
own backend unavailable, with a message naming what to install.

``list_backends()`` names the framework backends, which hold the whole contract (training
included); ``list_runtimes()`` adds the inference-only runtimes (onnxruntime), and is what
forward conformance, ``nin compare`` and ``nin conformance`` run over.  ``get_part`` reaches a
backend's optional parts (the d2l book's NiN, data-parallel training, its framework's own ONNX
exporter), refusing with the record's reason where the backend lacks one.  Every function here
raises ``UnknownNameError`` for a name no record has.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

import numpy

from nin.errors import BackendUnavailable, NinError, UnknownNameError

from .record import (  # noqa: F401  (the contract's names, re-exported for the backends and users)
    CONTRACT,
    INFERENCE,
    OPTIONAL_PARTS,
    PRECISIONS,
    BackendRecord,
    Needs,
    contract_attribute,
    prepare,
)

DISTRIBUTION = "nin-suite"
ENTRY_POINT_GROUP = "nin.backends"


@dataclass(frozen=True)
class Backend:
    """A backend the registry found: its record, its package and the distribution that installs it."""

    record: BackendRecord
    package: str  # e.g. "nin.frameworks.torch"
    distribution: str  # "nin-suite" for the backends of this repository

    def install(self) -> str:
        """The pip command that installs this backend's framework."""
        extra = self.record.extra
        return f"pip install '{self.distribution}[{extra}]'" if extra else f"pip install '{self.distribution}'"


@dataclass(frozen=True)
class _Registry:
    backends: dict[str, Backend]  # in listing order
    broken: dict[str, str]  # an outside backend's name -> why it cannot be read


def _read_record(package: str, name: str) -> BackendRecord:
    """The ``RECORD`` of ``package``, checked to be a ``BackendRecord`` named ``name``."""
    record = getattr(importlib.import_module(package), "RECORD", None)
    if not isinstance(record, BackendRecord):
        raise NinError(f"package {package} has no RECORD = BackendRecord(...) in its __init__.py")
    if record.name != name:
        raise NinError(f"package {package} is registered as {name!r} but its RECORD is named {record.name!r}")
    return record


def _outside(taken: Iterable[str]) -> tuple[dict[str, Backend], dict[str, str]]:
    """The backends of the ``nin.backends`` entry points, and those that cannot be read, with why
    (a name in ``taken``, this repository's, is one of those)."""
    found: dict[str, Backend] = {}
    broken: dict[str, str] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = ep.dist.name if ep.dist is not None else "?"
        where = f"entry point {ep.name} = {ep.value!r} of {distribution}"
        if ep.name in taken:
            broken[ep.name] = f"{where} registers a backend named {ep.name!r}, which nin-suite has"
        elif ep.name in found or ep.name in broken:
            broken[ep.name] = f"two distributions register a backend named {ep.name!r}; uninstall one ({where})"
            found.pop(ep.name, None)
        elif ep.attr:
            broken[ep.name] = f"{where} names an object; it must name the backend's package"
        else:
            try:
                found[ep.name] = Backend(_read_record(ep.module, ep.name), ep.module, distribution)
            except Exception as e:  # an outside package's own error: the backend is broken, the suite is not
                broken[ep.name] = f"{where} cannot be read: {type(e).__name__}: {e}"
    return found, broken


@functools.cache
def _registry() -> _Registry:
    """Every backend, read once per process: this repository's, then the outside ones."""
    backends: dict[str, Backend] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            package = f"{__name__}.{info.name}"
            backends[info.name] = Backend(_read_record(package, info.name), package, DISTRIBUTION)
    outside, broken = _outside(backends)
    backends.update(outside)
    for name, why in broken.items():
        warnings.warn(f"backend {name!r} left out: {why}", RuntimeWarning, stacklevel=2)
    order = sorted(backends.values(), key=lambda b: (not b.record.trains, b.record.order, b.record.name))
    return _Registry({b.record.name: b for b in order}, broken)


def _backend(name: str) -> Backend:
    registry = _registry()
    if name in registry.backends:
        return registry.backends[name]
    if name in registry.broken:
        raise BackendUnavailable(f"backend {name!r} cannot be used: {registry.broken[name]}")
    raise UnknownNameError(f"unknown backend {name!r}; known backends: {', '.join(registry.backends)}")


def backend_record(name: str) -> BackendRecord:
    """The record backend ``name`` declares (found without importing its framework)."""
    return _backend(name).record


def backend_package(name: str) -> str:
    """The package of backend ``name``, e.g. "nin.frameworks.torch"."""
    return _backend(name).package


def backend_of(module: str) -> str | None:
    """The backend whose package holds ``module`` ("nin.frameworks.jax.train" → "jax"), or None."""
    for name, backend in _registry().backends.items():
        if module == backend.package or module.startswith(f"{backend.package}."):
            return name
    return None


def backend_distribution(name: str) -> str:
    """The distribution that installs backend ``name``: "nin-suite" for this repository's."""
    return _backend(name).distribution


def broken_backends() -> dict[str, str]:
    """Outside backends that are registered but cannot be read, each with why."""
    return dict(_registry().broken)


def list_backends() -> list[str]:
    """The framework backends, installed or not: the whole contract, training included."""
    return [name for name, b in _registry().backends.items() if b.record.trains]


def list_runtimes() -> list[str]:
    """Everything that runs a NiN forward, installed or not: the framework backends, then
    the inference-only runtimes (onnxruntime)."""
    return list(_registry().backends)


def framework_modules() -> list[str]:
    """Every top-level module the records name: the backends' frameworks and what their optional
    parts need (``import nin`` imports none of them)."""
    modules: dict[str, None] = {}
    for backend in _registry().backends.values():
        modules.update(dict.fromkeys(backend.record.requires))
        for needs in backend.record.parts.values():
            modules.update(dict.fromkeys(needs.modules))
    return list(modules)


def backend_trains(name: str) -> bool:
    """Whether a backend trains (``Trainer``, ``loss_and_grads``); onnxruntime does not."""
    return backend_record(name).trains


def missing_modules(name: str) -> list[str]:
    """The framework modules a backend needs that are not installed (found without importing)."""
    return _missing(backend_record(name).requires)


def _missing(modules: Iterable[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run in this environment (a missing framework, a NumPy too new for
    it), with what to do; ``None`` when it can.  Found without importing the framework."""
    try:
        backend = _backend(name)
    except BackendUnavailable as e:
        return str(e)
    below = backend.record.numpy_below
    if below is not None and int(numpy.__version__.split(".")[0]) >= below:
        return (
            f"backend {name!r} needs NumPy < {below} (its framework's last release predates NumPy {below}) and this "
            f"environment has NumPy {numpy.__version__}; use the legacy environment (make setup → .venv/), "
            f"or {backend.install()} into a NumPy {below - 1} environment"
        )
    missing = missing_modules(name)
    if missing:
        return (
            f"backend {name!r} needs {', '.join(missing)}, which is not installed; install it with: {backend.install()}"
        )
    return None


def available_backends() -> list[str]:
    """The framework backends that can run in this environment (checked without importing them)."""
    return [name for name in list_backends() if unavailable_reason(name) is None]


def available_runtimes() -> list[str]:
    """``list_runtimes()`` that can run in this environment (checked without importing them)."""
    return [name for name in list_runtimes() if unavailable_reason(name) is None]


def backend_precisions(name: str) -> tuple[str, ...]:
    """The compute precisions a backend's ``build`` accepts, "float32" first."""
    return backend_record(name).precisions


def export_formats(name: str) -> tuple[str, ...]:
    """The native deployment formats a backend's ``export.export_model`` writes; () for
    onnxruntime, whose format is ONNX itself (``nin.onnx``)."""
    return backend_record(name).export_formats


def gpu_probes() -> list[str]:
    """The backends that run on a GPU where one is visible: ``nin bench --device gpu`` probes
    their GEMM, and the GPU checks cover them."""
    return [name for name, b in _registry().backends.items() if b.record.gpu_probe]


def check_precision(backend: str, precision: str) -> str:
    """``precision`` if ``backend`` computes in it; otherwise an error naming the allowed values."""
    allowed = backend_precisions(backend)
    if precision not in PRECISIONS:
        raise UnknownNameError(f"unknown precision {precision!r}; known precisions: {', '.join(PRECISIONS)}")
    if precision not in allowed:
        having = " and ".join(name for name in list_runtimes() if precision in backend_precisions(name))
        raise UnknownNameError(
            f"{precision} is available for {having} only; the {backend} backend computes in "
            f"{', '.join(allowed)} (use precision='float32')"
        )
    return precision


def thread_env(name: str, threads: int) -> dict[str, str]:
    """The environment variables that give backend ``name`` ``threads`` threads, for a process
    that has not imported its framework yet (no framework is imported here)."""
    return dict.fromkeys(backend_record(name).thread_env, str(threads))


def get_backend(name: str) -> ModuleType:
    """The package of a backend with its framework imported, e.g. ``get_backend("torch").build(spec)``."""
    backend = _backend(name)
    reason = unavailable_reason(name)
    if reason:
        raise BackendUnavailable(reason)
    try:
        module = importlib.import_module(backend.package)
        prepare(backend.package)  # the record's host settings that must precede the framework's import
        importlib.import_module(f"{backend.package}.adapter")  # the framework itself, now
        return module
    except BackendUnavailable:  # a host setting refused, with its own reason and remedy
        raise
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} failed to import ({e}); reinstall it with: {backend.install()}"
        ) from e


def backends_with_part(part: str) -> list[str]:
    """The framework backends whose record says they have optional part ``part``."""
    _check_part(part)
    return [name for name in list_backends() if part in backend_record(name).parts]


def _check_part(part: str) -> None:
    if part not in OPTIONAL_PARTS:
        raise UnknownNameError(f"unknown optional part {part!r}; known parts: {', '.join(OPTIONAL_PARTS)}")


def part_unavailable_reason(name: str, part: str) -> str | None:
    """Why optional part ``part`` of backend ``name`` cannot be used here (the backend lacks it,
    its framework or what the part needs is missing), in one line; ``None`` when it can."""
    _check_part(part)
    record = backend_record(name)
    title = OPTIONAL_PARTS[part].title
    if part not in record.parts:
        why = record.lacks.get(part, "it has none")
        having = ", ".join(backends_with_part(part)) or "none"
        return f"the {name} backend has no {title}: {why} (backends that have it: {having})"
    reason = unavailable_reason(name)
    if reason:
        return reason
    needs = record.parts[part]
    missing = _missing(needs.modules)
    if missing:
        return f"{title} of the {name} backend needs {', '.join(missing)}, which is not installed; {needs.install}"
    return None


def get_part(name: str, part: str) -> ModuleType:
    """The module of optional part ``part`` (``OPTIONAL_PARTS``) of backend ``name``, its
    framework imported: ``get_part("torch", "distributed").initialize(cluster)``.  Refuses with
    a one-line ``BackendUnavailable`` where the part cannot be used (``part_unavailable_reason``)."""
    reason = part_unavailable_reason(name, part)
    if reason:
        raise BackendUnavailable(reason)
    get_backend(name)
    module = f"{backend_package(name)}.{OPTIONAL_PARTS[part].file}"
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"{OPTIONAL_PARTS[part].title} of the {name} backend failed to import ({e})") from e


def extras_closure(extras: Iterable[str]) -> set[str]:
    """``extras`` of the installed nin-suite and every extra they include (``all`` includes
    ``torch``, ...), read from its metadata (``Requires-Dist: nin-suite[torch,...]; extra == "all"``)."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError as e:
        raise NinError(f"{DISTRIBUTION} is not installed, so its extras are unknown; pip install -e . first") from e
    includes: dict[str, set[str]] = {}
    known: set[str] = set()
    for requirement in requirements:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if marker is None:
            continue
        known.add(marker.group(1))
        inner = re.match(rf"{DISTRIBUTION.replace('-', '[-_.]')}\s*\[([^\]]*)\]", requirement, re.IGNORECASE)
        if inner:
            includes.setdefault(marker.group(1), set()).update(e.strip() for e in inner.group(1).split(","))
    wanted = list(extras)
    unknown = [extra for extra in wanted if extra not in known]
    if unknown:
        raise UnknownNameError(
            f"unknown extra {', '.join(unknown)} of {DISTRIBUTION}; known: {', '.join(sorted(known))}"
        )
    closure: set[str] = set()
    while wanted:
        extra = wanted.pop()
        if extra not in closure:
            closure.add(extra)
            wanted.extend(includes.get(extra, ()))
    return closure


def backends_of_extras(extras: Iterable[str]) -> list[str]:
    """This repository's backends that ``pip install 'nin-suite[extras]'`` installs: those whose
    record's extra is among ``extras`` or included by one of them.  ``make test`` requires them."""
    closure = extras_closure(extras)
    return [
        name for name, b in _registry().backends.items() if b.distribution == DISTRIBUTION and b.record.extra in closure
    ]
