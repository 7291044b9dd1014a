"""Canonical weights: the one exchange format between the four backends.

``dict[str, np.ndarray]`` in float32.  ``block{b}.conv{c}.weight`` is (out, in, kh, kw) —
(out, in, kd, kh, kw) in 3-D — and ``block{b}.conv{c}.bias`` is (out,); a fully connected head
is ``head.weight`` (out, in) over inputs flattened in (C, H, W) order, and ``head.bias``.
Saved as ``.npz`` or ``.safetensors``.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import UnknownNameError, WeightsError
from .files import atomic_write
from .shapes import head_input_shape
from .spec import Linear, NiNBlock, NiNSpec

Weights = dict[str, np.ndarray]


def _unreadable() -> tuple[type[BaseException], ...]:
    """What NumPy, zipfile, zlib and safetensors raise on a truncated or corrupt file (a
    damaged ``.npy`` header fails in NumPy's parser with TokenError or SyntaxError)."""
    errors: tuple[type[BaseException], ...] = (
        OSError, ValueError, EOFError, KeyError, SyntaxError, NotImplementedError, tokenize.TokenError,
        zipfile.BadZipFile, zlib.error,
    )  # fmt: skip
    try:
        from safetensors import SafetensorError
    except ImportError:
        return errors
    return (*errors, SafetensorError)


UNREADABLE = _unreadable()

INITIALIZERS = ("xavier", "gaussian", "kaiming", "centered")


def weight_shapes(spec: NiNSpec) -> dict[str, tuple[int, ...]]:
    """Canonical name → shape, in network order."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels = spec.in_channels
    for name, layer in spec.named_layers():
        if isinstance(layer, NiNBlock):
            for c, cv in enumerate(layer.convs):
                shapes[f"{name}.conv{c}.weight"] = (cv.out_channels, channels, *cv.kernel)
                shapes[f"{name}.conv{c}.bias"] = (cv.out_channels,)
                channels = cv.out_channels
        elif isinstance(layer, Linear):
            shapes["head.weight"] = (layer.out_features, math.prod(head_input_shape(spec)))
            shapes["head.bias"] = (layer.out_features,)
    return shapes


def init_weights(spec: NiNSpec, seed: int = 0, method: str = "xavier", std: float = 0.05) -> Weights:
    """Seeded canonical initial weights, identical for every backend.

    ``xavier``: Glorot uniform, bound sqrt(6 / (fan_in + fan_out)) — what d2l's ``init_cnn``
    applies.  ``gaussian``: N(0, std²) — the authors' Caffe fillers (std 0.05 by default).
    ``kaiming``: He normal, std sqrt(2 / fan_in) for ReLU.  ``centered``: the same draws as
    ``kaiming`` with each output's weights shifted to sum to zero over its fan-in (the training
    recipe's default; see below).  Biases start at zero.  Draws happen in canonical order from
    one ``np.random.default_rng(seed)``.

    Why ``centered``: every input of a NiN layer is non-negative (pixels, or ReLU outputs with a
    positive mean), so with zero-mean random weights a channel's pre-activation is offset by
    ``mean(input) · sum(w)`` — the same sign at every position and for every example.  Where
    that sum is negative enough the channel is zero everywhere from the first step and gets no
    gradient; when it is one of the last block's class maps, that class is never predicted
    (how often, with each initialiser: docs/training.md, "Robustness").  Filters that sum to
    zero cancel the offset, so every channel starts active on part of the input."""
    if method not in INITIALIZERS:
        raise UnknownNameError(f"unknown initializer {method!r}; known: {', '.join(INITIALIZERS)}")
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for name, shape in weight_shapes(spec).items():
        if name.endswith(".bias"):
            weights[name] = np.zeros(shape, np.float32)
            continue
        receptive = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        if method == "xavier":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-bound, bound, shape)
        elif method == "gaussian":
            w = rng.normal(0.0, std, shape)
        else:
            w = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
            if method == "centered":
                w = w - w.reshape(shape[0], -1).mean(axis=1).reshape(-1, *[1] * (len(shape) - 1))
        weights[name] = w.astype(np.float32)
    return weights


def validate_weights(spec: NiNSpec, weights: Weights) -> Weights:
    """Check names, shapes, dtypes and finiteness against the spec; return float32 copies in
    canonical order.  The error lists every missing, unexpected, mis-shaped and non-finite
    tensor at once."""
    expected = weight_shapes(spec)
    problems = []
    missing = [n for n in expected if n not in weights]
    unexpected = [n for n in weights if n not in expected]
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    for name, shape in expected.items():
        if name in weights:
            got = np.shape(weights[name])
            if tuple(got) != shape:
                problems.append(f"{name} has shape {tuple(got)} but {spec.name} needs {shape}")
            elif np.asarray(weights[name]).dtype.kind != "f":
                problems.append(f"{name} has dtype {np.asarray(weights[name]).dtype}; expected float32")
            elif not np.isfinite(weights[name]).all():
                value = np.asarray(weights[name])
                nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
                problems.append(f"{name} has {nan} NaN and {inf} inf value(s)")
    if problems:
        raise WeightsError(f"weights do not fit {spec.name} ({len(expected)} tensors expected): " + "; ".join(problems))
    return {name: np.asarray(weights[name], dtype=np.float32) for name in expected}


def save_weights(weights: Weights, path: str | Path) -> Path:
    """Write ``.npz`` or ``.safetensors`` (chosen by suffix), atomically (``nin.files``)."""
    path = Path(path)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    if path.suffix == ".npz":
        return atomic_write(path, lambda f: np.savez(f, **arrays))
    if path.suffix == ".safetensors":
        from safetensors.numpy import save

        return atomic_write(path, lambda f: f.write(save(arrays)))
    raise UnknownNameError(f"cannot save weights as {path.name!r}: use a .npz or .safetensors name")


def load_weights(path: str | Path, spec: NiNSpec | None = None) -> Weights:
    """Read ``.npz`` or ``.safetensors``; with a spec, validate against it.  A ``nin train``
    checkpoint is an ``.npz`` too: its weights are read, its momentum buffers and metadata
    left out."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                weights = {k: data[k] for k in data.files}
        elif path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            weights = load_file(str(path))
        else:
            raise UnknownNameError(f"cannot read weights from {path.name!r}: expected .npz or .safetensors")
    except UnknownNameError:
        raise
    except UNREADABLE as e:
        raise WeightsError(
            f"{path} is not a readable {path.suffix} weights file ({type(e).__name__}: {e}); "
            f"it may be truncated or corrupt: write it again"
        ) from None
    if "meta" in weights:  # a training checkpoint (nin.train.save_checkpoint)
        weights = {k: v for k, v in weights.items() if k != "meta" and not k.startswith("momentum.")}
    return validate_weights(spec, weights) if spec is not None else weights
