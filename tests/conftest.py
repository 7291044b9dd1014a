"""Shared fixtures: backends by name (``NIN_BACKENDS=torch,jax`` selects some), specs,
canonical weights and cached NumPy-reference results."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import nin
import numpy as np
import pytest


def selected_backends() -> list[str]:
    wanted = os.environ.get("NIN_BACKENDS")
    names = nin.list_backends()
    return [b for b in wanted.split(",") if b] if wanted else names


def backend_or_skip(name: str):
    """The adapter, or a skip naming what is missing.  An installed backend that fails to
    import is a failure, not a skip."""
    from nin.frameworks import missing_modules

    missing = missing_modules(name)
    if missing:
        pytest.skip(f"backend {name} unavailable: {', '.join(missing)} not installed")
    return nin.get_backend(name)


@pytest.fixture(params=selected_backends())
def backend(request):
    return backend_or_skip(request.param)


def batch(spec: nin.NiNSpec, n: int = 2, seed: int = 0, input_size=None) -> np.ndarray:
    """A reproducible input batch in NCHW, float32, values like normalised images."""
    size = spec.input_size if input_size is None else tuple(input_size)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, spec.in_channels, *size)).astype(np.float32)


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
