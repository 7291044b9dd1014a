"""The NumPy oracle: forward and backward passes of any spec, 2-D or 3-D, in float64.

Every backend is tested against this module, so it is written for clarity and checked by
hand-computed cases (tests/test_reference.py).  The pooling rules it implements are the ones
written down in ``nin.spec``, and it computes every window position and average-pool divisor
itself, by enumerating windows from that definition: it shares no geometry helper with the
backends (which use ``nin.shapes``), so a bug there cannot hide in both.

    logits, acts = forward(spec, weights, x)                  # acts: {layer name: array}
    loss, grads = loss_and_grads(spec, weights, x, labels)    # mean softmax cross-entropy
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .shapes import check_input
from .spec import AvgPool, Dropout, GlobalAvgPool, Linear, MaxPool, NiNBlock, NiNSpec
from .weights import Weights, validate_weights, weight_shapes

# -- the operations, each with its backward ----------------------------------------------------


def _spatial(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def _windows(xp: np.ndarray, kernel, stride, out) -> np.ndarray:
    """View of shape (N, C, *out, *kernel): the window of every output position."""
    nd = len(kernel)
    win = sliding_window_view(xp, kernel, axis=_spatial(xp))
    picks = tuple(slice(None, (o - 1) * s + 1, s) for o, s in zip(out, stride, strict=True))
    return win[(slice(None), slice(None), *picks) + (slice(None),) * nd]


def _offsets(kernel, stride, out):
    """For every kernel offset: the strided slice of the padded input it touches."""
    for offset in itertools.product(*(range(k) for k in kernel)):
        yield offset, tuple(slice(k, k + (o - 1) * s + 1, s) for k, o, s in zip(offset, out, stride, strict=True))


def _pad(x: np.ndarray, low, high, value: float) -> np.ndarray:
    widths = [(0, 0), (0, 0)] + [(lo, hi) for lo, hi in zip(low, high, strict=True)]
    return np.pad(x, widths, constant_values=value)


def conv_forward(x, w, b, stride, padding):
    """Cross-correlation with bias, as every framework's ``Conv`` computes it."""
    kernel = w.shape[2:]
    out = tuple(
        len(window_starts(n, k, s, p, ceil_mode=False))
        for n, k, s, p in zip(x.shape[2:], kernel, stride, padding, strict=True)
    )
    xp = _pad(x, padding, padding, 0.0)
    win = _windows(xp, kernel, stride, out)
    nd = len(kernel)
    y = np.tensordot(win, w, axes=([1, *range(2 + nd, 2 + 2 * nd)], [1, *range(2, 2 + nd)]))
    y = np.moveaxis(y, -1, 1) + b.reshape(1, -1, *([1] * nd))
    return y, (xp.shape, win, w, stride, padding)


def conv_backward(dy, cache):
    xp_shape, win, w, stride, padding = cache
    nd = w.ndim - 2
    out = dy.shape[2:]
    spatial = tuple(range(2, 2 + nd))
    db = dy.sum(axis=(0, *spatial))
    dw = np.tensordot(dy, win, axes=([0, *spatial], [0, *range(2, 2 + nd)]))
    dxp = np.zeros(xp_shape)
    for offset, where in _offsets(w.shape[2:], stride, out):
        tap = w[(slice(None), slice(None), *offset)]
        dxp[(slice(None), slice(None), *where)] += np.einsum("no...,oc->nc...", dy, tap)
    crop = tuple(slice(p, n - p) for p, n in zip(padding, xp_shape[2:], strict=True))
    return dxp[(slice(None), slice(None), *crop)], dw, db


def window_starts(n: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> list[int]:
    """Where each window starts along one dimension, in input coordinates (the input is
    ``[0, n)``, padding ``[-padding, 0)`` and ``[n, n + padding)``), enumerated from the rule in
    ``nin.spec``: windows start at ``-padding`` and step by ``stride``.  Floor mode keeps the
    windows that end inside the padded input.  Ceil mode keeps adding windows until one reaches
    the end of the padded input, but never one that starts in the right padding (at or past
    ``n``)."""
    if kernel > n + 2 * padding:
        return []  # no window fits: the spec rejects such inputs (nin.shapes.check_input)
    starts: list[int] = []
    start = -padding
    while True:
        if ceil_mode:
            covered = bool(starts) and starts[-1] + kernel >= n + padding
            if covered or start >= n:
                return starts
        elif start + kernel > n + padding:
            return starts
        starts.append(start)
        start += stride


def window_divisor(start: int, kernel: int, n: int, padding: int) -> int:
    """How many cells of the window ``[start, start + kernel)`` lie in the padded input
    ``[-padding, n + padding)``: average pooling's divisor along one dimension."""
    return sum(1 for cell in range(start, start + kernel) if -padding <= cell < n + padding)


def _pool_geometry(x, pool):
    """Output size, padding below and above, and the divisor of every output position."""
    out, low, high, divisor = [], [], [], np.ones(())
    for n, k, s, p in zip(x.shape[2:], pool.kernel, pool.stride, pool.padding, strict=True):
        starts = window_starts(n, k, s, p, pool.ceil_mode)
        out.append(len(starts))
        low.append(p)
        high.append(max(p, starts[-1] + k - n))
        divisor = np.multiply.outer(divisor, [window_divisor(start, k, n, p) for start in starts])
    return tuple(out), tuple(low), tuple(high), divisor


def max_pool_forward(x, pool: MaxPool):
    """Max over each window; padding is −inf so it never wins.  Ties go to the first cell."""
    out, low, high, _ = _pool_geometry(x, pool)
    xp = _pad(x, low, high, -np.inf)
    win = _windows(xp, pool.kernel, pool.stride, out)
    flat = win.reshape(*win.shape[: 2 + len(out)], -1)
    arg = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, (xp.shape, arg, pool, x.shape)


def max_pool_backward(dy, cache):
    xp_shape, arg, pool, x_shape = cache
    dxp = np.zeros(xp_shape)
    for j, (_, where) in enumerate(_offsets(pool.kernel, pool.stride, dy.shape[2:])):
        dxp[(slice(None), slice(None), *where)] += np.where(arg == j, dy, 0.0)
    return _crop(dxp, pool.padding, x_shape)


def avg_pool_forward(x, pool: AvgPool):
    out, low, high, divisor = _pool_geometry(x, pool)
    xp = _pad(x, low, high, 0.0)
    win = _windows(xp, pool.kernel, pool.stride, out)
    y = win.sum(axis=tuple(range(2 + len(out), win.ndim))) / divisor
    return y, (xp.shape, divisor, pool, x.shape)


def avg_pool_backward(dy, cache):
    xp_shape, divisor, pool, x_shape = cache
    dxp = np.zeros(xp_shape)
    share = dy / divisor
    for _, where in _offsets(pool.kernel, pool.stride, dy.shape[2:]):
        dxp[(slice(None), slice(None), *where)] += share
    return _crop(dxp, pool.padding, x_shape)


def _crop(dxp, low, x_shape):
    return dxp[(slice(None), slice(None), *(slice(lo, lo + n) for lo, n in zip(low, x_shape[2:], strict=True)))]


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = logits.shape[0]
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


# -- the network ---------------------------------------------------------------------------------


def dropout_masks(spec: NiNSpec, x_shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """One keep-mask (bool, shaped like the layer's input batch) per dropout layer, from a
    seeded generator, so that every backend can be fed the same masks."""
    from .shapes import output_shapes

    shapes = output_shapes(spec, x_shape[2:])
    rng = np.random.default_rng(seed)
    masks, previous = {}, None
    for name, layer in spec.named_layers():
        if isinstance(layer, Dropout):
            masks[name] = rng.random((x_shape[0], *shapes[previous])) >= layer.rate
        previous = name if not isinstance(layer, NiNBlock) else f"{name}.conv{len(layer.convs) - 1}"
    return masks


def _run(spec, weights, x, masks):
    """Forward pass recording what the backward pass needs."""
    validate_weights(spec, weights)
    weights = {k: np.asarray(weights[k], dtype=np.float64) for k in weight_shapes(spec)}
    check_input(spec, x)
    h = np.asarray(x, dtype=np.float64)
    acts: dict[str, np.ndarray] = {}
    tape = []
    for name, layer in spec.named_layers():
        if isinstance(layer, NiNBlock):
            for c, cv in enumerate(layer.convs):
                key = f"{name}.conv{c}"
                h, cache = conv_forward(h, weights[f"{key}.weight"], weights[f"{key}.bias"], cv.stride, cv.padding)
                h = np.maximum(h, 0.0)
                tape.append((key, "conv", (cache, h)))
                acts[key] = h
            continue
        if isinstance(layer, MaxPool):
            h, cache = max_pool_forward(h, layer)
            tape.append((name, "max", cache))
        elif isinstance(layer, AvgPool):
            h, cache = avg_pool_forward(h, layer)
            tape.append((name, "avg", cache))
        elif isinstance(layer, Dropout):
            scale = None
            if masks is not None and name in masks:
                scale = masks[name] / (1.0 - layer.rate)
                h = h * scale
            tape.append((name, "dropout", scale))
        elif isinstance(layer, GlobalAvgPool):
            tape.append((name, "gap", h.shape))
            h = h.mean(axis=_spatial(h))
        elif isinstance(layer, Linear):
            flat = h.reshape(h.shape[0], -1)
            tape.append((name, "linear", (flat, h.shape)))
            h = flat @ weights["head.weight"].T + weights["head.bias"]
        acts[name] = h
    return h, acts, tape, weights


def relu_margin(spec: NiNSpec, weights: Weights, x: np.ndarray) -> float:
    """How far the input sits from a ReLU kink: the smallest |z| / Σ|terms| over every
    convolution pre-activation z (Σ|terms| is the same convolution of |input| with |weights|
    and |bias|), ignoring cells where every term is exactly zero.

    float32 evaluates z with an error of a few units of 2⁻²⁴ ≈ 6e-8 of Σ|terms|; where the
    margin is smaller than that, a backend may legitimately gate the ReLU the other way and
    its gradient then differs from the oracle's by far more than rounding.  Gradient
    conformance cases are chosen with a margin well above it."""
    validate_weights(spec, weights)
    h = np.asarray(x, dtype=np.float64)
    worst = np.inf
    for name, layer in spec.named_layers():
        if isinstance(layer, NiNBlock):
            for c, cv in enumerate(layer.convs):
                w = np.asarray(weights[f"{name}.conv{c}.weight"], np.float64)
                b = np.asarray(weights[f"{name}.conv{c}.bias"], np.float64)
                z, _ = conv_forward(h, w, b, cv.stride, cv.padding)
                terms, _ = conv_forward(np.abs(h), np.abs(w), np.abs(b), cv.stride, cv.padding)
                live = terms > 0
                if live.any():
                    worst = min(worst, float((np.abs(z[live]) / terms[live]).min()))
                h = np.maximum(z, 0.0)
        elif isinstance(layer, MaxPool):
            h, _ = max_pool_forward(h, layer)
        elif isinstance(layer, AvgPool):
            h, _ = avg_pool_forward(h, layer)
    return worst


def forward(
    spec: NiNSpec,
    weights: Weights,
    x: np.ndarray,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits (N, num_classes) and every layer's output, by layer name, in float64.

    Evaluation mode unless ``masks`` gives dropout keep-masks (see ``dropout_masks``)."""
    logits, acts, _, _ = _run(spec, weights, x, masks)
    return logits, acts


def loss_and_grads(
    spec: NiNSpec,
    weights: Weights,
    x: np.ndarray,
    labels: np.ndarray,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean softmax cross-entropy and its gradient for every canonical weight (float64)."""
    logits, _, tape, w = _run(spec, weights, x, masks)
    loss, g = softmax_cross_entropy(logits, np.asarray(labels))
    grads: dict[str, np.ndarray] = {}
    for name, kind, cache in reversed(tape):
        if kind == "linear":
            flat, shape = cache
            grads["head.weight"] = g.T @ flat
            grads["head.bias"] = g.sum(axis=0)
            g = (g @ w["head.weight"]).reshape(shape)
        elif kind == "gap":
            g = np.broadcast_to(g.reshape(*g.shape, *([1] * (len(cache) - 2))), cache) / math.prod(cache[2:])
        elif kind == "dropout":
            g = g if cache is None else g * cache
        elif kind == "avg":
            g = avg_pool_backward(g, cache)
        elif kind == "max":
            g = max_pool_backward(g, cache)
        else:
            conv_cache, y = cache
            g, grads[f"{name}.weight"], grads[f"{name}.bias"] = conv_backward(g * (y > 0), conv_cache)
    return loss, {k: grads[k] for k in w}
