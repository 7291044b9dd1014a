"""The conformance contract for MXNet Gluon (frameworks/README.md): canonical weights and NumPy
batches in and out of a native ``NiN``.

Gluon is channels-first and every parameter of ``NiN`` is named after its canonical weight in
the canonical layout (``block0.conv1.weight`` is ``net.prefix + "block0_conv1_weight"``), so the
conversions here are only between NumPy and NDArrays.  ``build`` hybridizes the model with
static memory; ``intermediates`` and ``loss_and_grads`` run it child by child, each child on
its own cached graph.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

import nin
from nin.checks import cuda_driver_problem
from nin.frameworks import check_precision

from .model import NiN

DEVICES = ("cpu", "gpu")


def _device(device: str) -> mx.Context:
    """The MXNet context of contract device "cpu" or "gpu"."""
    if device == "cpu":
        return mx.cpu()
    if device == "gpu":
        if not gpu_available():
            raise nin.BackendUnavailable(
                f"device='gpu' needs a CUDA GPU and a CUDA build of MXNet, but mxnet {mx.__version__} "
                f"sees none (mx.context.num_gpus() is 0); use device='cpu'"
            )
        return mx.gpu(0)
    raise nin.UnknownNameError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> NiN:
    """A hybridized ``NiN`` on ``device`` ("cpu" or "gpu"), its weights set to
    ``nin.init_weights(spec, seed, init)``.  Only ``precision="float32"`` is implemented here."""
    check_precision("mxnet", precision)
    ctx = _device(device)
    weights = nin.init_weights(spec, seed, init)
    model = NiN(spec)
    model.initialize(mx.init.Zero(), ctx=ctx)
    load_state(model, weights)
    model.hybridize(static_alloc=True, static_shape=True)
    return model


def native_parameters(model: NiN) -> dict[str, gluon.Parameter]:
    """The model's trainable parameters: canonical weight name → the Gluon parameter holding
    it, in canonical order."""
    params = model.collect_params()
    return {name: params[model.prefix + name.replace(".", "_")] for name in nin.weight_shapes(model.spec)}


def load_state(model: NiN, weights: nin.weights.Weights) -> None:
    """Copy canonical weights into ``model`` (validated first: every missing, unexpected and
    mis-shaped tensor is named)."""
    native = to_native(model, nin.validate_weights(model.spec, weights))
    for name, param in native_parameters(model).items():
        param.set_data(native[name])


def export_state(model: NiN) -> nin.weights.Weights:
    """The canonical weights of ``model``: ``{name: float32 ndarray}`` in canonical order."""
    return from_native(model, {name: param.data() for name, param in native_parameters(model).items()})


def to_native(model: NiN, weights: nin.weights.Weights) -> dict[str, mx.nd.NDArray]:
    """Canonical tensors (weights, or momentum buffers: named and shaped like the weights) in
    the structure of ``native_parameters``: float32 NDArrays on the model's context, by
    canonical name (Gluon's layout is canonical)."""
    ctx = _context_of(model)
    return {name: mx.nd.array(weights[name], ctx=ctx, dtype=np.float32) for name in nin.weight_shapes(model.spec)}


def from_native(model: NiN, native: dict[str, mx.nd.NDArray]) -> nin.weights.Weights:
    """The inverse of ``to_native``: ``{name: float32 ndarray}`` in canonical order."""
    return {name: native[name].asnumpy() for name in nin.weight_shapes(model.spec)}


def _context_of(model: NiN) -> mx.Context:
    """The context the model's parameters live on."""
    return next(iter(model.collect_params().values())).list_ctx()[0]


def native_input(model: NiN, x) -> mx.nd.NDArray:
    """``x`` checked against the spec, as a float32 NDArray on the model's context."""
    return mx.nd.array(nin.check_input(model.spec, x), ctx=_context_of(model), dtype=np.float32)


def native_labels(model: NiN, labels, n: int) -> mx.nd.NDArray:
    """Class labels checked against the spec for a batch of ``n``, as a float32 NDArray on the
    model's context (Gluon's ``SoftmaxCrossEntropyLoss`` takes class indices as floats)."""
    return mx.nd.array(nin.check_labels(model.spec, labels, n), ctx=_context_of(model), dtype=np.float32)


def compute_scope(model: NiN) -> mx.Context:
    """The context a native call of ``model`` runs in: its ``mx.Context``, which as a ``with``
    block makes new NDArrays default to the model's device."""
    return _context_of(model)


def forward(model: NiN, x, train: bool = False) -> np.ndarray:
    """Logits ``(N, num_classes)`` float32; ``train=True`` applies dropout with a fresh mask."""
    x = native_input(model, x)
    with autograd.train_mode() if train else autograd.predict_mode():
        return model(x).asnumpy()


def _layer_outputs(model: NiN, x: mx.nd.NDArray) -> Iterator[tuple[str, mx.nd.NDArray]]:
    """Run ``model`` child by child with evaluation-mode arithmetic (a dropout layer is the
    identity), yielding every canonical layer's name and output; a block yields the output of
    each convolution, ReLU included.  Each child runs on its own cached graph."""
    for name, layer in model.spec.named_layers():
        child = getattr(model, name)
        if isinstance(layer, nin.NiNBlock):
            for c, conv in enumerate(child):
                x = conv(x)
                yield f"{name}.conv{c}", x
            continue
        if not isinstance(layer, nin.Dropout):
            x = child(x)
        yield name, x


def intermediates(model: NiN, x) -> dict[str, np.ndarray]:
    """``{layer name: NCHW float32 array}`` for every layer of ``nin.layer_table``, in order, in
    evaluation mode (a hybridized ``NiN`` exposes only its output, so its children run one by
    one)."""
    with autograd.predict_mode():
        return {name: out.asnumpy() for name, out in _layer_outputs(model, native_input(model, x))}


def param_count(model: NiN) -> int:
    """Parameters as Gluon counts them."""
    return sum(int(np.prod(param.shape)) for param in model.collect_params().values())


def loss_and_grads(model: NiN, x, labels) -> tuple[float, nin.weights.Weights]:
    """Mean softmax cross-entropy in evaluation mode and its gradient for every canonical
    weight, in canonical order.  The parameters' ``.grad()`` buffers are left untouched.

    The forward is recorded in training mode with the dropout layers skipped, which is
    evaluation mode's arithmetic: MXNet 1.9.1's oneDNN max pooling keeps the argmax workspace
    its backward reads only in training mode, so a forward recorded with
    ``train_mode=False`` gets wrong max-pooling gradients (cf. apache/mxnet#10994)."""
    x = native_input(model, x)
    target = native_labels(model, labels, x.shape[0])
    params = native_parameters(model)
    with autograd.record(train_mode=True):
        *_, (_, logits) = _layer_outputs(model, x)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(logits, target).mean()
    grads = autograd.grad(loss, [param.data(x.context) for param in params.values()])
    return float(loss.asscalar()), from_native(model, dict(zip(params, grads, strict=True)))


def framework_version() -> str:
    return f"mxnet {mx.__version__}"


def gpu_available() -> bool:
    return mx.context.num_gpus() > 0


def gpu_missing_reason() -> str | None:
    """Why MXNet sees no GPU, in one line (a CPU-only build, no driver, ...); ``None`` if it sees one."""
    if not mx.runtime.Features().is_enabled("CUDA"):
        return f"mxnet {mx.__version__} is a CPU-only build (its CUDA feature is off): install mxnet-cu112 or similar"
    if gpu_available():
        return None
    driver = cuda_driver_problem()
    return f"mxnet {mx.__version__} finds no GPU: {driver or 'mx.context.num_gpus() is 0'}"


# -- host hooks: what framework-free code (nin.bench, nin.compare) asks of the framework -----------


def set_threads(threads: int) -> None:
    """Give MXNet's OpenMP (oneDNN) kernels ``threads`` threads, as ``OMP_NUM_THREADS`` does
    before import (``MXSetNumOMPThreads``, MXNet's C API: its Python package wraps no setter)."""
    mx.base.check_call(mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(threads)))


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    """A call computing ``a @ b`` with ``mx.nd.dot`` on ``device`` and waiting for it; float32
    only (``check_precision``)."""
    check_precision("mxnet", dtype)
    ctx = _device(device)
    ma, mb = (mx.nd.array(m, ctx=ctx) for m in (a, b))

    def product() -> None:
        mx.nd.dot(ma, mb).wait_to_read()

    return product


def device_peak_mb(device: str) -> float | None:
    """None: MXNet 1.9 reports a GPU's free and total memory, not this process's peak (on the
    CPU the process's peak RSS says it)."""
    return None


def device_name(device: str) -> str:
    """What ``device`` is on this machine: MXNet names GPUs by index only ("gpu(0)"; the CPU:
    "cpu")."""
    return str(_device(device)) if device == "gpu" else "cpu"


def synchronize() -> None:
    """Wait for every operation MXNet's engine has queued (``mx.nd.waitall``).  MXNet runs
    operators asynchronously: a training step that returns its loss (``asscalar``) has waited
    for the forward only, and its backward and update would run on into whatever is timed next."""
    mx.nd.waitall()
