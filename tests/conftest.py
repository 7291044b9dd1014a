"""Shared fixtures: backends by name (``NIN_BACKENDS=torch,jax`` selects some) and batches;
the oracle's cases are ``nin.checks``' (cached there).

``NIN_REQUIRE_BACKENDS=torch,tensorflow,jax,mxnet`` (CI sets it per environment) turns the
skip of a listed backend that is not installed into a failure naming what is missing, so a
CI run cannot pass with a backend silently absent."""

from __future__ import annotations

import os

import pytest

import nin
from nin.checks import sample_batch


def selected_runtimes() -> list[str]:
    """Backends and inference-only runtimes (onnxruntime); ``NIN_BACKENDS`` selects some."""
    from nin.frameworks import list_runtimes

    wanted = os.environ.get("NIN_BACKENDS")
    return [b for b in wanted.split(",") if b] if wanted else list_runtimes()


def selected_backends() -> list[str]:
    """The selected backends that train (the whole contract); an unknown name stays in, to fail."""
    from nin.frameworks import backend_trains, list_runtimes

    return [b for b in selected_runtimes() if b not in list_runtimes() or backend_trains(b)]


def selected_with_part(part: str) -> list[str]:
    """The selected backends whose record says they have optional ``part`` (``nin.frameworks.record.OPTIONAL_PARTS``)."""
    from nin.frameworks import backend_record, list_runtimes

    return [b for b in selected_backends() if b not in list_runtimes() or part in backend_record(b).parts]


def required_backends() -> list[str]:
    """The backends ``NIN_REQUIRE_BACKENDS`` (comma list) says must be available."""
    return [b for b in os.environ.get("NIN_REQUIRE_BACKENDS", "").split(",") if b]


def backend_or_skip(name: str):
    """The adapter, or a skip naming why it cannot run — a failure instead where the backend
    is listed in ``NIN_REQUIRE_BACKENDS``.  An installed backend that fails to import is a
    failure, not a skip."""
    from nin.frameworks import unavailable_reason

    reason = unavailable_reason(name)
    if reason:
        if name in required_backends():
            pytest.fail(f"{reason}; NIN_REQUIRE_BACKENDS={os.environ['NIN_REQUIRE_BACKENDS']} requires it")
        pytest.skip(reason)
    return nin.get_backend(name)


def part_or_skip(name: str, part: str):
    """The module of optional ``part`` of backend ``name`` (``nin.frameworks.get_part``), or a
    skip naming why it cannot be used here — a failure where the backend is in
    ``NIN_REQUIRE_BACKENDS``, as for the backend itself."""
    from nin.frameworks import get_part, part_unavailable_reason

    backend_or_skip(name)
    reason = part_unavailable_reason(name, part)
    if reason:
        if name in required_backends():
            pytest.fail(f"{reason}; NIN_REQUIRE_BACKENDS={os.environ['NIN_REQUIRE_BACKENDS']} requires it")
        pytest.skip(reason)
    return get_part(name, part)


def gpu_backend_or_skip(name: str):
    """The adapter where ``name`` sees a GPU; otherwise a skip "no GPU visible to NAME: why"
    (a CPU-only build, no driver, no CUDA plugin: ``nin.checks.gpu_missing_reason``) — a
    failure instead where ``NIN_REQUIRE_GPU`` (a comma list, e.g. ``torch,jax``) names it."""
    from nin.checks import gpu_missing_reason

    adapter = backend_or_skip(name)
    reason = gpu_missing_reason(name)
    if reason:
        required = os.environ.get("NIN_REQUIRE_GPU", "")
        if name in required.split(","):
            pytest.fail(f"no GPU visible to {name}: {reason}; NIN_REQUIRE_GPU={required} requires one")
        pytest.skip(f"no GPU visible to {name}: {reason}")
    return adapter


def require(adapter, capability: str) -> None:
    """Skip a test the backend cannot take part in: one without ``loss_and_grads`` (an
    inference-only runtime) skips the gradient tests."""
    if not hasattr(adapter, capability):
        pytest.skip(f"backend {adapter.__name__.rsplit('.', 1)[-1]} has no {capability}")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``fuzz`` (the long property-based profile) run only when ``-m`` names the
    marker (``pytest -m fuzz``); the default run deselects them."""
    if "fuzz" in (config.option.markexpr or ""):
        return
    fuzz = [item for item in items if item.get_closest_marker("fuzz")]
    if fuzz:
        config.hook.pytest_deselected(items=fuzz)
        items[:] = [item for item in items if not item.get_closest_marker("fuzz")]


@pytest.fixture(params=selected_backends())
def backend(request):
    return backend_or_skip(request.param)


@pytest.fixture(params=selected_runtimes())
def runtime(request):
    """Every selected runtime, the inference-only ones (onnxruntime) included."""
    return backend_or_skip(request.param)


batch = sample_batch
