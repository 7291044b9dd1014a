"""Shapes, parameter counts and multiply-accumulates of a spec, derived analytically.

Everything here is arithmetic on the spec, so it is said once for all backends: the
conformance suite checks every framework's live model against these numbers.

Layer names (the keys of ``layer_table`` and of every backend's ``intermediates``):
``block{b}.conv{c}`` for each convolution (its output after ReLU; the last one is the block's
output), ``pool{p}``, ``dropout{d}``, ``gap`` and ``head``.  Shapes are per example, channels
first: ``(C, H, W)`` / ``(C, D, H, W)``; ``gap`` and ``head`` give ``(C,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError, SpecError
from .spec import AvgPool, Dropout, GlobalAvgPool, Linear, MaxPool, NiNBlock, NiNSpec


def window_out(n: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window along one dimension (the rule is in
    ``nin.spec``).  Returns a value < 1 when the padded input is shorter than the kernel."""
    span = n + 2 * padding - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= n + padding:
        out -= 1
    return out


def pool_padding(size: tuple[int, ...], pool: MaxPool | AvgPool) -> tuple[tuple[int, int], ...]:
    """``(low, high)`` padding per spatial dimension that makes every window of ``pool`` whole:
    the spec's padding, plus, in ceil mode, enough on the high side for the last window."""
    pads = []
    for n, k, s, p in zip(size, pool.kernel, pool.stride, pool.padding, strict=True):
        out = window_out(n, k, s, p, pool.ceil_mode)
        pads.append((p, max(p, (out - 1) * s + k - n - p)))
    return tuple(pads)


def avg_pool_divisor(size: tuple[int, ...], pool: AvgPool) -> np.ndarray:
    """The divisor of every output position (shape: the output's spatial size): the window
    clipped at input + padding, Caffe's rule and PyTorch's ``count_include_pad=True``."""
    divisor = np.ones((), np.float64)
    for n, k, s, p in zip(size, pool.kernel, pool.stride, pool.padding, strict=True):
        start = np.arange(window_out(n, k, s, p, pool.ceil_mode)) * s - p
        divisor = np.multiply.outer(divisor, np.minimum(start + k, n + p) - start)
    return divisor


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer table."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int

    @property
    def activations(self) -> int:
        """Number of values this layer outputs per example."""
        return math.prod(self.output_shape)


def _fmt(size: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in size)


class _TooSmall(Exception):
    def __init__(self, layer: str, what: str, got: tuple[int, ...], kernel: tuple[int, ...]):
        super().__init__(layer)
        self.layer, self.what, self.got, self.kernel = layer, what, got, kernel


def _window_layer(name, what, size, kernel, stride, padding, ceil_mode=False) -> tuple[int, ...]:
    out = tuple(window_out(n, k, s, p, ceil_mode) for n, k, s, p in zip(size, kernel, stride, padding, strict=True))
    if min(out) < 1:
        padded = tuple(n + 2 * p for n, p in zip(size, padding, strict=True))
        raise _TooSmall(name, what, padded, kernel)
    return out


def _walk(spec: NiNSpec, input_size: tuple[int, ...]) -> list[LayerInfo]:
    rows: list[LayerInfo] = []
    channels, size = spec.in_channels, tuple(input_size)
    for name, layer in spec.named_layers():
        if isinstance(layer, NiNBlock):
            for c, cv in enumerate(layer.convs):
                conv_name = f"{name}.conv{c}"
                size = _window_layer(conv_name, "convolution", size, cv.kernel, cv.stride, cv.padding)
                taps = channels * math.prod(cv.kernel)
                params = cv.out_channels * taps + cv.out_channels
                macs = cv.out_channels * taps * math.prod(size)
                channels = cv.out_channels
                kind = "conv " + "×".join(map(str, cv.kernel)) + " + relu"
                rows.append(LayerInfo(conv_name, kind, (channels, *size), params, macs))
        elif isinstance(layer, MaxPool | AvgPool):
            what = ("max" if isinstance(layer, MaxPool) else "avg") + "-pool"
            size = _window_layer(name, what, size, layer.kernel, layer.stride, layer.padding, layer.ceil_mode)
            rows.append(LayerInfo(name, f"{what} {_fmt(layer.kernel)}", (channels, *size), 0, 0))
        elif isinstance(layer, Dropout):
            rows.append(LayerInfo(name, f"dropout {layer.rate:g}", (channels, *size), 0, 0))
        elif isinstance(layer, GlobalAvgPool):
            rows.append(LayerInfo(name, "global avg-pool", (channels,), 0, 0))
        elif isinstance(layer, Linear):
            fan_in = channels * math.prod(size)
            params = layer.out_features * fan_in + layer.out_features
            rows.append(LayerInfo(name, "linear", (layer.out_features,), params, layer.out_features * fan_in))
    return rows


def layer_table(spec: NiNSpec, input_size: tuple[int, ...] | None = None) -> list[LayerInfo]:
    """Every layer's output shape, parameters and MACs at ``input_size`` (default: the
    spec's).  Raises ``SpecError`` when the spec cannot run at its own input size and
    ``InputError`` when it cannot run at the size given."""
    own = input_size is None
    size = spec.input_size if own else tuple(int(s) for s in input_size)
    if len(size) != spec.ndim:
        raise InputError(f"{spec.name} is {spec.ndim}-D: input size needs {spec.ndim} entries; got {_fmt(size)}")
    if not own and _has_head(spec) and size != spec.input_size:
        raise InputError(
            f"{spec.name} has a fully connected head sized for {_fmt(spec.input_size)} inputs; "
            f"got {_fmt(size)}. Build the spec for this size: "
            f"nin.get_spec({spec.name!r}, input_size={size})"
        )
    try:
        return _walk(spec, size)
    except _TooSmall as e:
        detail = f"{e.layer}, a {_fmt(e.kernel)} {e.what}, gets {_fmt(e.got)} (with padding) from a {_fmt(size)} input"
        low = _fmt(min_input_size(spec))
        if own:
            raise SpecError(
                f"spec {spec.name!r} is impossible at its input size {_fmt(size)}: {detail}, "
                f"smaller than its kernel. It needs input ≥ {low}, or smaller kernels/strides"
            ) from None
        raise InputError(f"{spec.name} needs input ≥ {low} ({detail}); got {_fmt(size)}") from None


def _has_head(spec: NiNSpec) -> bool:
    return isinstance(spec.layers[-1], Linear)


def min_input_size(spec: NiNSpec) -> tuple[int, ...]:
    """The smallest input, per spatial dimension, that every layer accepts (a fully
    connected head is then rebuilt for that size)."""
    low = []
    for d in range(spec.ndim):
        n = 1
        while True:
            size = tuple(n if i == d else 4096 for i in range(spec.ndim))
            try:
                _walk(spec, size)
                break
            except _TooSmall:
                n += 1
        low.append(n)
    return tuple(low)


def output_shapes(spec: NiNSpec, input_size: tuple[int, ...] | None = None) -> dict[str, tuple[int, ...]]:
    """``{layer name: per-example output shape}``, channels first."""
    return {row.name: row.output_shape for row in layer_table(spec, input_size)}


def head_input_shape(spec: NiNSpec) -> tuple[int, ...]:
    """The per-example shape, channels first, that a fully connected head flattens in
    (C, H, W) order: the output of the layer before it, or the input for a head alone.  A
    ``SpecError`` for a spec that ends in global average pooling."""
    if not _has_head(spec):
        raise SpecError(f"{spec.name} ends in {type(spec.layers[-1]).__name__}, not a fully connected head (Linear)")
    rows = layer_table(spec)
    return rows[-2].output_shape if len(rows) > 1 else (spec.in_channels, *spec.input_size)


def param_count(spec: NiNSpec) -> int:
    return sum(row.params for row in layer_table(spec))


def mac_count(spec: NiNSpec, input_size: tuple[int, ...] | None = None) -> int:
    """Multiply-accumulates of one forward pass for one example (convolutions and the head)."""
    return sum(row.macs for row in layer_table(spec, input_size))


def check_input(spec: NiNSpec, x) -> np.ndarray:
    """Validate a batch before any framework sees it; return it as a float32 NumPy array.

    Expects ``(N, C, H, W)`` (``(N, C, D, H, W)`` in 3-D) with ``C == spec.in_channels``,
    a floating dtype, finite values, and a spatial size every layer accepts."""
    expected = "(N, C, D, H, W)" if spec.ndim == 3 else "(N, C, H, W)"
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise InputError(f"{spec.name} takes a NumPy array shaped {expected}; got {type(x).__name__}")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise InputError(
            f"{spec.name} takes floating-point input; got dtype {x.dtype}. "
            f"Convert with x.astype(np.float32) (and scale images to [0, 1])"
        )
    if x.ndim != spec.ndim + 2:
        raise InputError(
            f"{spec.name} takes a batch shaped {expected} ({spec.ndim + 2}-D); got shape {x.shape} "
            f"({x.ndim}-D). Add a batch axis with x[None] for a single example"
            if x.ndim == spec.ndim + 1
            else f"{spec.name} takes a batch shaped {expected} ({spec.ndim + 2}-D); got shape {x.shape}"
        )
    if x.shape[0] < 1:
        raise InputError(f"{spec.name} got an empty batch, shape {x.shape}")
    if x.shape[1] != spec.in_channels:
        hint = ""
        if x.shape[-1] == spec.in_channels:
            order = (0, x.ndim - 1, *range(1, x.ndim - 1))
            hint = f"; this looks channels-last — transpose it with x.transpose{order}"
        raise InputError(
            f"{spec.name} expects {spec.in_channels} channel(s) on axis 1 of {expected}; got shape {x.shape}{hint}"
        )
    layer_table(spec, x.shape[2:])
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise InputError(f"{spec.name} got {bad} NaN/inf value(s) in its input of shape {x.shape}")
    return x.astype(np.float32, copy=False)


def check_labels(spec: NiNSpec, labels, batch_size: int) -> np.ndarray:
    """Validate class labels for a batch; return them as int64."""
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise InputError(f"{spec.name} takes integer class labels; got dtype {y.dtype}")
    if y.shape != (batch_size,):
        raise InputError(f"{spec.name} takes one label per example, shape ({batch_size},); got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= spec.num_classes):
        raise InputError(
            f"{spec.name} has {spec.num_classes} classes, so labels must be in [0, {spec.num_classes}); "
            f"got values from {y.min()} to {y.max()}"
        )
    return y.astype(np.int64, copy=False)
