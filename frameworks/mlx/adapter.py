"""The conformance contract for MLX (frameworks/README.md): canonical weights and NumPy batches
in and out of a native ``NiN``.

MLX is channels-last, and the flattened parameter tree of ``NiN`` has the canonical weight
names, so all layout conversion happens here and is of layouts only:

* input: NCHW (NCDHW) → NHWC (NDHWC);
* convolution kernels: canonical (out, in, kh, kw) ↔ MLX's (out, kh, kw, in);
* the fully connected head: canonical ``head.weight`` is (out, C·H·W) over (C, H, W)-flattened
  features; the MLX model flattens its native (H, W, C) activations, so the columns are
  permuted here rather than transposing activations in the model;
* activations out: NHWC → NCHW.

MLX evaluates lazily: a call builds a graph, and ``mx.eval`` computes it.  Every function here
evaluates once, at the end (``intermediates`` all layers in one ``mx.eval``), so no layer waits
for the host.  A batch is cut into one piece per CPU stream (``shards``): MLX runs each stream
on a thread of its own, so the pieces' passes run side by side on the cores.  The forward pass is ``mx.compile``-d per model (``_compiled``), with the model's
parameters as the compiled function's inputs (``inputs=model.state``), so a ``load_state`` or a
training step reaches it without recompiling.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

import nin
from nin import blas
from nin.frameworks import check_precision
from nin.weights import Weights

from .model import NiN

DEVICES = ("cpu", "gpu")


def _device(device: str) -> mx.Device:
    """The MLX device of contract device "cpu" or "gpu"."""
    if device == "cpu":
        return mx.cpu
    if device == "gpu":
        reason = gpu_missing_reason()
        if reason:
            raise nin.BackendUnavailable(f"device='gpu' needs a GPU: {reason}; or use device='cpu'")
        return mx.gpu
    raise nin.UnknownNameError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> NiN:
    """A ``NiN`` in evaluation mode, its weights set to ``nin.init_weights(spec, seed, init)``.
    MLX computes on its default device, which ``device`` sets (``mx.set_default_device``:
    process-wide, as MLX's idiom is); only ``precision="float32"`` is implemented here."""
    check_precision("mlx", precision)
    mx.set_default_device(_device(device))
    model = NiN(spec)
    model.eval()
    load_state(model, nin.init_weights(spec, seed, init))
    return model


def load_state(model: NiN, weights: Weights) -> None:
    """Replace the parameters with canonical weights (validated first: every missing,
    unexpected and mis-shaped tensor is named)."""
    model.update(to_native(model, nin.validate_weights(model.spec, weights)))
    mx.eval(model.parameters())


def export_state(model: NiN) -> Weights:
    """Canonical weights, float32, in canonical order and layout."""
    return from_native(model, model.parameters())


# -- layout conversion ---------------------------------------------------------------------------


def _channels_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


def _head_columns(spec: nin.NiNSpec) -> np.ndarray:
    """For each column of the native (H, W, C)-flattened head weight, the canonical (C, H, W)
    feature index it holds."""
    chw = nin.shapes.head_input_shape(spec)
    return np.arange(math.prod(chw)).reshape(chw).transpose(*range(1, len(chw)), 0).reshape(-1)


def _tensor_to_native(spec: nin.NiNSpec, name: str, value: np.ndarray) -> np.ndarray:
    if name == "head.weight":
        return value[:, _head_columns(spec)]
    if value.ndim > 2:  # (out, in, *k) → (out, *k, in)
        return np.moveaxis(value, 1, -1)
    return value


def _tensor_from_native(spec: nin.NiNSpec, name: str, value: np.ndarray) -> np.ndarray:
    if name == "head.weight":
        columns = np.empty_like(value)
        columns[:, _head_columns(spec)] = value
        return columns
    if value.ndim > 2:  # (out, *k, in) → (out, in, *k)
        return np.moveaxis(value, -1, 1)
    return value


# -- the native half of the contract: the framework's own objects, for train.py and distributed.py


def to_native(model: NiN, weights: Weights) -> dict:
    """Canonical tensors (weights, or momentum buffers: named and shaped like the weights) in
    the structure of ``native_parameters``: MLX's nested parameter tree (``block0`` →
    ``conv0`` → ``weight``), in MLX's layout."""
    spec, tensors = model.spec, []
    for name in nin.weight_shapes(spec):
        value = _tensor_to_native(spec, name, np.asarray(weights[name], np.float32))
        tensors.append((name, mx.array(np.ascontiguousarray(value))))
    return tree_unflatten(tensors)


def from_native(model: NiN, native: dict) -> Weights:
    """The inverse of ``to_native``: ``{name: float32 ndarray}`` in canonical order and layout."""
    flat = dict(tree_flatten(native))
    mx.eval(list(flat.values()))
    return {
        name: np.ascontiguousarray(_tensor_from_native(model.spec, name, np.array(flat[name], np.float32)))
        for name in nin.weight_shapes(model.spec)
    }


def native_parameters(model: NiN) -> dict:
    """The model's trainable parameters: its MLX parameter tree (``model.trainable_parameters()``),
    whose flattened names are the canonical ones."""
    return model.trainable_parameters()


def native_input(model: NiN, x) -> mx.array:
    """``x`` checked against the spec, as a float32 NHWC (NDHWC) ``mx.array``."""
    x = nin.check_input(model.spec, x)
    return mx.array(np.ascontiguousarray(np.moveaxis(x, 1, -1)))


def native_labels(model: NiN, labels, n: int) -> mx.array:
    """Class labels checked against the spec for a batch of ``n``, an int32 ``mx.array``."""
    return mx.array(nin.check_labels(model.spec, labels, n).astype(np.int32))


def compute_scope(model: NiN) -> mx.stream:
    """The context a native call of ``model`` runs in: MLX's default stream (``mx.stream``)."""
    return mx.stream(mx.default_stream(mx.default_device()))


# -- the batch over MLX's CPU streams, and the compiled functions ------------------------------------

# MLX runs the operations of each stream on a thread of its own, one after another, and the
# BLAS of its CPU build is single-threaded: a batch is cut into one piece per stream, whose
# forward and backward passes run side by side (``set_threads`` sets how many; all cores at first).
_streams: list[mx.Stream] = []


def streams() -> list[mx.Stream]:
    """The streams a batch is split over (``set_threads``; by default one per core)."""
    if not _streams:
        set_threads(len(os.sched_getaffinity(0)))
    return _streams


def shards(n: int) -> list[tuple[mx.Stream, slice]]:
    """Each stream with its piece of a batch of ``n`` rows: contiguous, ⌈n/streams⌉ rows each,
    the last ones short or left out."""
    per = -(-n // len(streams()))
    return [
        (stream, slice(start, min(start + per, n))) for stream, start in zip(streams(), range(0, n, per), strict=False)
    ]


def on_streams(f: Callable[[mx.array], mx.array], x: mx.array) -> mx.array:
    """``f(x)`` for a function of the batch row by row, each piece of the batch on its own
    stream (``shards``), the pieces' results concatenated."""
    pieces = []
    for stream, rows in shards(x.shape[0]):
        with mx.stream(stream):
            pieces.append(f(x[rows]))
    return mx.concatenate(pieces)


def logits(model: NiN, x: mx.array) -> mx.array:
    """``model(x)``, each piece of the batch on its own stream (``on_streams``), in the model's mode."""
    return on_streams(model, x)


def weighted_loss(logits: mx.array, labels: mx.array, weight: mx.array, scale: mx.array) -> mx.array:
    """``scale · Σ weight_i · cross-entropy_i``: the mean loss of a batch of ``n`` with weights 1
    and scale ``1/n``; with ``distributed.py``'s weights and scale, its part of the global one."""
    return (nn.losses.cross_entropy(logits, labels, reduction="none") * weight).sum() * scale


def value_and_grads(
    model: NiN, x: mx.array, labels: mx.array, weight: mx.array, scale: mx.array
) -> tuple[mx.array, mx.array, dict]:
    """``weighted_loss`` of the batch in the model's mode, its logits and its gradient for every
    parameter (``nn.value_and_grad`` over the model's trainable parameters), each piece of the
    batch on its own stream (``shards``), the pieces' losses and gradients summed."""
    loss_and_grad = nn.value_and_grad(model, lambda *batch: _loss_and_logits(model, *batch))
    loss, pieces, grads = mx.array(0.0), [], None
    for stream, rows in shards(x.shape[0]):
        with mx.stream(stream):
            (piece_loss, piece_logits), piece_grads = loss_and_grad(x[rows], labels[rows], weight[rows], scale)
        loss, grads = loss + piece_loss, piece_grads if grads is None else tree_map(mx.add, grads, piece_grads)
        pieces.append(piece_logits)
    return loss, mx.concatenate(pieces), grads


def _loss_and_logits(model: NiN, x: mx.array, labels: mx.array, weight: mx.array, scale: mx.array):
    out = model(x)
    return weighted_loss(out, labels, weight, scale), out


def _compiled(model: NiN, train: bool) -> Callable[[mx.array], mx.array]:
    """``logits(model, x)`` in training or evaluation mode, ``mx.compile``-d once per model and
    mode (each input shape traces once more).  The parameters are the compiled function's
    inputs (``model.state``), dropout draws from MLX's global generator (``mx.random.state``),
    so new weights and fresh masks reach it without recompiling."""
    cache = model.__dict__.setdefault("_nin_compiled", {})
    if train not in cache:
        state = [model.state, mx.random.state]

        def run(x: mx.array) -> mx.array:
            model.train(train)
            return logits(model, x)

        cache[train] = mx.compile(run, inputs=state, outputs=state)
    return cache[train]


def _run(model: NiN, x: mx.array, train: bool) -> mx.array:
    """The compiled ``logits(model, x)``, leaving the model's mode as it was."""
    was_training = model.training
    try:
        return _compiled(model, train)(x)
    finally:
        model.train(was_training)


# -- the contract ----------------------------------------------------------------------------------


def forward(model: NiN, x, train: bool = False) -> np.ndarray:
    """Logits ``(N, num_classes)`` float32; ``train=True`` applies dropout with a fresh mask."""
    logits = _run(model, native_input(model, x), train)
    mx.eval(logits)
    return np.array(logits, np.float32)


def intermediates(model: NiN, x) -> dict[str, np.ndarray]:
    """``{layer name: NCHW float32 array}`` for every layer of ``nin.layer_table``, in order,
    in evaluation mode, each piece of the batch on its own stream, all evaluated together."""
    x = native_input(model, x)
    was_training = model.training
    model.eval()
    try:
        pieces = []
        for stream, rows in shards(x.shape[0]):
            with mx.stream(stream):
                pieces.append(dict(model.outputs(x[rows])))
    finally:
        model.train(was_training)
    outputs = {name: mx.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    mx.eval(list(outputs.values()))
    rows = nin.layer_table(model.spec, tuple(x.shape[1:-1]))
    return {row.name: _channels_first(np.array(outputs[row.name], np.float32)) for row in rows}


def param_count(model: NiN) -> int:
    """Parameters as MLX counts them: the sizes of the arrays of its parameter tree."""
    return sum(value.size for _, value in tree_flatten(model.parameters()))


def loss_and_grads(model: NiN, x, labels) -> tuple[float, Weights]:
    """Mean softmax cross-entropy in evaluation mode and its gradient for every canonical
    weight (``value_and_grads``)."""
    x = native_input(model, x)
    target = native_labels(model, labels, x.shape[0])
    n = x.shape[0]
    was_training = model.training
    model.eval()
    try:
        loss, _, grads = value_and_grads(model, x, target, mx.ones(n), mx.array(1 / n))
    finally:
        model.train(was_training)
    mx.eval(loss, grads)
    return loss.item(), from_native(model, grads)


def framework_version() -> str:
    return f"mlx {mx.__version__} ({blas.chosen().describe()})"


def gpu_available() -> bool:
    return mx.metal.is_available() or mx.cuda.is_available()


def gpu_missing_reason() -> str | None:
    """Why MLX sees no GPU, in one line; ``None`` if it sees one."""
    if gpu_available():
        return None
    return (
        f"mlx {mx.__version__} on {platform.system()} {platform.machine()} is the CPU build (mlx-cpu): "
        f"MLX runs on a GPU through Metal on Apple silicon or through its CUDA build (pip install 'mlx[cuda]')"
    )


# -- host hooks: what framework-free code (nin.bench, nin.compare) asks of the framework -----------


def set_threads(threads: int) -> None:
    """Split every batch over ``threads`` new CPU streams (``streams``): MLX runs each stream's
    operations on a thread of its own, and reads no thread variable (``RECORD.thread_env`` is
    empty).  Functions already compiled keep the streams they were traced with."""
    _streams[:] = [mx.new_stream(mx.default_device()) for _ in range(max(1, threads))]


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    """A call computing ``a @ b`` with MLX's matmul (``mx.matmul``: ``cblas_sgemm`` of the BLAS
    MLX uses, ``nin.blas``) on ``device``, evaluated; float32 only.  On the CPU the rows of ``a``
    are split over the streams (``shards``) as a batch is, since each stream's BLAS runs one
    thread."""
    check_precision("mlx", dtype)
    with mx.stream(_device(device)):
        ma, mb = mx.array(a), mx.array(b)
        mx.eval(ma, mb)
    if device != "cpu":
        return lambda: mx.eval(mx.matmul(ma, mb, stream=_device(device)))
    return lambda: mx.eval([mx.matmul(ma[rows], mb, stream=stream) for stream, rows in shards(ma.shape[0])])


def device_peak_mb(device: str) -> float | None:
    """The most device memory this process has held, in MiB (None on the CPU, where the
    process's peak RSS says it)."""
    return mx.get_peak_memory() / 2**20 if device == "gpu" else None


def device_name(device: str) -> str:
    """What ``device`` is on this machine (the CPU: "cpu")."""
    return mx.device_info().get("device_name", "gpu") if device == "gpu" else "cpu"


def synchronize() -> None:
    """Wait until every operation MLX has queued on the default stream has run."""
    mx.synchronize()
