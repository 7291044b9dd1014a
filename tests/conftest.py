"""Shared fixtures: backends by name (``NIN_BACKENDS=torch,jax`` selects some), specs,
canonical weights and cached NumPy-reference results."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

import nin
from nin.conformance import sample_batch


def selected_runtimes() -> list[str]:
    """Backends and inference-only runtimes (onnxruntime); ``NIN_BACKENDS`` selects some."""
    from nin.frameworks import list_runtimes

    wanted = os.environ.get("NIN_BACKENDS")
    return [b for b in wanted.split(",") if b] if wanted else list_runtimes()


def selected_backends() -> list[str]:
    """The selected backends that train (the whole contract); an unknown name stays in, to fail."""
    from nin.frameworks import backend_trains, list_runtimes

    return [b for b in selected_runtimes() if b not in list_runtimes() or backend_trains(b)]


def backend_or_skip(name: str):
    """The adapter, or a skip naming what is missing.  An installed backend that fails to
    import is a failure, not a skip."""
    from nin.frameworks import unavailable_reason

    reason = unavailable_reason(name)
    if reason:
        pytest.skip(reason)
    return nin.get_backend(name)


@pytest.fixture(params=selected_backends())
def backend(request):
    return backend_or_skip(request.param)


batch = sample_batch

_REFERENCE_CACHE: dict = {}


def reference_forward(spec: nin.NiNSpec, seed: int = 0, n: int = 2):
    """(x, weights, logits, acts) for ``spec``, computed once per session."""
    key = (spec, seed, n)
    if key not in _REFERENCE_CACHE:
        from nin import reference

        weights = nin.init_weights(spec, seed)
        x = batch(spec, n, seed)
        logits, acts = reference.forward(spec, weights, x)
        _REFERENCE_CACHE[key] = (x, weights, logits, acts)
    return _REFERENCE_CACHE[key]
