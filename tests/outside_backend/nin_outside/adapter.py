"""The adapter of the backend contract (frameworks/README.md) on the NumPy oracle: the native
layout is the canonical one, and every computation is ``nin.reference``'s, in float64."""

from __future__ import annotations

import contextlib

import numpy as np

import nin
from nin import reference
from nin.errors import BackendUnavailable
from nin.frameworks import check_precision

from .model import NiN


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> NiN:
    """A model holding ``nin.init_weights(spec, seed, init)``; CPU and float32 only."""
    check_precision("outside", precision)
    device_name(device)
    return NiN(spec, nin.init_weights(spec, seed, init))


def load_state(model: NiN, weights: nin.weights.Weights) -> None:
    model.weights = {k: np.array(v, np.float32) for k, v in nin.validate_weights(model.spec, weights).items()}


def export_state(model: NiN) -> nin.weights.Weights:
    return {k: v.copy() for k, v in model.weights.items()}


def forward(model: NiN, x, train: bool = False) -> np.ndarray:
    x = nin.check_input(model.spec, x)
    masks = reference.dropout_masks(model.spec, x.shape, int(model.rng.integers(2**31))) if train else None
    return reference.forward(model.spec, model.weights, x, masks)[0].astype(np.float32)


def intermediates(model: NiN, x) -> dict[str, np.ndarray]:
    _, acts = reference.forward(model.spec, model.weights, nin.check_input(model.spec, x))
    return {name: value.astype(np.float32) for name, value in acts.items()}


def param_count(model: NiN) -> int:
    return sum(value.size for value in model.weights.values())


def loss_and_grads(model: NiN, x, labels) -> tuple[float, nin.weights.Weights]:
    x = nin.check_input(model.spec, x)
    loss, grads = reference.loss_and_grads(model.spec, model.weights, x, nin.check_labels(model.spec, labels, len(x)))
    return float(loss), {name: g.astype(np.float32) for name, g in grads.items()}


def framework_version() -> str:
    return f"numpy {np.__version__} (nin.reference)"


def gpu_available() -> bool:
    return False


def gpu_missing_reason() -> str:
    return "the outside backend computes with NumPy on the CPU only"


# -- the native half: the native objects are the canonical arrays themselves ----------------------


def to_native(model: NiN, weights: nin.weights.Weights) -> dict[str, np.ndarray]:
    return {k: np.array(v, np.float32) for k, v in weights.items()}


def from_native(model: NiN, native: dict[str, np.ndarray]) -> nin.weights.Weights:
    return {k: np.array(native[k], np.float32) for k in model.weights}


def native_parameters(model: NiN) -> dict[str, np.ndarray]:
    return model.weights


def native_input(model: NiN, x) -> np.ndarray:
    return nin.check_input(model.spec, x)


def native_labels(model: NiN, labels, n: int) -> np.ndarray:
    return nin.check_labels(model.spec, labels, n)


def compute_scope(model: NiN) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


# -- host hooks ---------------------------------------------------------------------------------


def set_threads(n: int) -> None:
    """NumPy's BLAS reads OMP_NUM_THREADS at import (``nin.frameworks.thread_env``)."""


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    device_name(device)
    check_precision("outside", dtype)
    return lambda: a @ b


def device_peak_mb(device: str = "cpu") -> None:
    return None


def device_name(device: str = "cpu") -> str:
    if device != "cpu":
        raise BackendUnavailable(f"the outside backend runs on the CPU only; got device={device!r}")
    return "cpu"


def synchronize() -> None:
    """Nothing to wait for: NumPy returns finished arrays."""
