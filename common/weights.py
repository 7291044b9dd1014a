"""Canonical weights: the one exchange format between the four backends.

``dict[str, np.ndarray]`` in float32.  ``block{b}.conv{c}.weight`` is (out, in, kh, kw) —
(out, in, kd, kh, kw) in 3-D — and ``block{b}.conv{c}.bias`` is (out,); a fully connected head
is ``head.weight`` (out, in) over inputs flattened in (C, H, W) order, and ``head.bias``.
Saved as ``.npz`` or ``.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
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
        other = _zoo_model_of(weights)
        if other is not None and other != spec.name:
            raise WeightsError(_other_model(weights, other, spec, expected))
        raise WeightsError(f"weights do not fit {spec.name} ({len(expected)} tensors expected): " + "; ".join(problems))
    return {name: np.asarray(weights[name], dtype=np.float32) for name in expected}


def _zoo_model_of(weights: Weights) -> str | None:
    """The zoo model (at its zoo configuration) whose names and shapes these weights have."""
    from .zoo import get_spec, list_models

    shapes = {name: tuple(np.shape(w)) for name, w in weights.items()}
    return next((name for name in list_models() if weight_shapes(get_spec(name)) == shapes), None)


def _other_model(weights: Weights, other: str, spec: NiNSpec, expected: dict[str, tuple[int, ...]]) -> str:
    """One line for weights that are another zoo model's: both models, the first tensor
    that differs, and what to do."""
    name = next(
        n for n in [*expected, *weights] if n not in weights or n not in expected or np.shape(weights[n]) != expected[n]
    )
    there = f"{tuple(np.shape(weights[name]))}" if name in weights else "absent"
    here = f"{expected[name]}" if name in expected else "absent"
    return (
        f"these are weights of {other} ({len(weights)} tensors), not of {spec.name} ({len(expected)} tensors): "
        f"{name} is {there} in them and {here} in {spec.name}; use them with {other}, or weights made for {spec.name}"
    )


# A .safetensors file has no checksum of its own (an .npz is a zip: CRC-32 per tensor), so
# save_weights writes the sha256 of the tensor data into the header's metadata and load_weights
# checks it where present: a flipped byte in the data is refused, not loaded as other weights.
_DIGEST = "nin.sha256_of_data"


def _safetensors_parts(blob: bytes) -> tuple[dict, bytes]:
    """A .safetensors file's header metadata and its tensor data (the bytes after the header)."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    return header.get("__metadata__") or {}, blob[8 + size :]


def save_weights(weights: Weights, path: str | Path) -> Path:
    """Write ``.npz`` or ``.safetensors`` (chosen by suffix), atomically (``nin.files``); a
    ``.safetensors`` file carries the sha256 of its tensor data in its metadata."""
    path = Path(path)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    if path.suffix == ".npz":
        return atomic_write(path, lambda f: np.savez(f, **arrays))
    if path.suffix == ".safetensors":
        from safetensors.numpy import save

        _, data = _safetensors_parts(save(arrays))
        blob = save(arrays, metadata={_DIGEST: hashlib.sha256(data).hexdigest()})
        return atomic_write(path, lambda f: f.write(blob))
    raise UnknownNameError(f"cannot save weights as {path.name!r}: use a .npz or .safetensors name")


def _read_safetensors(path: Path) -> Weights:
    from safetensors.numpy import load

    blob = path.read_bytes()
    weights = load(blob)
    metadata, data = _safetensors_parts(blob)
    if _DIGEST in metadata and hashlib.sha256(data).hexdigest() != metadata[_DIGEST]:
        raise WeightsError(
            f"{path} is damaged: its tensor data do not match the sha256 written when it was saved; write it again"
        )
    return weights


def load_weights(path: str | Path, spec: NiNSpec | None = None) -> Weights:
    """Read ``.npz`` or ``.safetensors``; with a spec, validate against it (an error names the
    file).  A ``nin train`` checkpoint is an ``.npz`` too: its weights are read, its momentum
    buffers and metadata left out.  A truncated or damaged file is a ``WeightsError``: the
    zip's CRC-32 guards an ``.npz``, the sha256 in its metadata a ``.safetensors`` written by
    ``save_weights`` (one written elsewhere, without it, is read as it is)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                weights = {k: data[k] for k in data.files}
        elif path.suffix == ".safetensors":
            weights = _read_safetensors(path)
        else:
            raise UnknownNameError(f"cannot read weights from {path.name!r}: expected .npz or .safetensors")
    except (UnknownNameError, WeightsError):
        raise
    except UNREADABLE as e:
        raise WeightsError(
            f"{path} is not a readable {path.suffix} weights file ({type(e).__name__}: {e}); "
            f"it may be truncated or corrupt: write it again"
        ) from None
    if "meta" in weights:  # a training checkpoint (nin.train.save_checkpoint)
        weights = {k: v for k, v in weights.items() if k != "meta" and not k.startswith("momentum.")}
    if spec is None:
        return weights
    try:
        return validate_weights(spec, weights)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
