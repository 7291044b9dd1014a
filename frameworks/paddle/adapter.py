"""The conformance contract for PaddlePaddle (frameworks/README.md): canonical weights and NumPy
batches in and out of a native ``NiN``.

Paddle is channels-first and ``NiN``'s parameter names are the canonical weight names, with
convolution kernels in the canonical layout; the one layout conversion is the fully connected
head, whose ``nn.Linear`` weight Paddle keeps as (in, out), the canonical (out, in) transposed.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import paddle
import paddle.nn.functional as F

import nin
from nin.checks import cuda_driver_problem
from nin.frameworks import check_precision

from .model import NiN

DEVICES = ("cpu", "gpu")
_HEAD_WEIGHT = "head.weight"  # (out, in) canonically; (in, out) in paddle.nn.Linear


def _device(device: str) -> paddle.CPUPlace | paddle.CUDAPlace:
    """The Paddle place of contract device "cpu" or "gpu"."""
    if device == "cpu":
        return paddle.CPUPlace()
    if device == "gpu":
        reason = gpu_missing_reason()
        if reason:
            raise nin.BackendUnavailable(f"device='gpu' needs a CUDA GPU: {reason}; or use device='cpu'")
        return paddle.CUDAPlace(0)
    raise nin.UnknownNameError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> NiN:
    """A ``NiN`` in evaluation mode on ``device`` ("cpu" or "gpu"), its weights set to
    ``nin.init_weights(spec, seed, init)``; float32 only."""
    check_precision("paddle", precision)
    place = _device(device)
    model = NiN(spec)
    if isinstance(place, paddle.CUDAPlace):
        model.to(device="gpu:0")
    model.eval()
    load_state(model, nin.init_weights(spec, seed, init))
    return model


def load_state(model: NiN, weights: nin.weights.Weights) -> None:
    """Copy canonical weights into ``model`` (validated first: every missing, unexpected and
    mis-shaped tensor is named)."""
    native = to_native(model, nin.validate_weights(model.spec, weights))
    for name, param in native_parameters(model).items():
        param.set_value(native[name])


def export_state(model: NiN) -> nin.weights.Weights:
    """The canonical weights of ``model``: ``{name: float32 ndarray}`` in canonical order."""
    return from_native(model, native_parameters(model))


def _numpy(t: paddle.Tensor) -> np.ndarray:
    """A C-contiguous float32 copy that shares no memory with the model."""
    return np.array(t.detach().astype("float32").numpy(), copy=True, order="C")


# -- the native half of the contract: the framework's own objects, for train.py and distributed.py


def _place(model: NiN):
    return next(iter(model.parameters())).place


def to_native(model: NiN, weights: nin.weights.Weights) -> dict[str, paddle.Tensor]:
    """Canonical tensors (weights, or momentum buffers: named and shaped like the weights) in
    the structure of ``native_parameters``: float32 tensors on the model's place, by canonical
    name, the head's weight transposed to Paddle's (in, out)."""
    place = _place(model)
    native = {}
    for name in nin.weight_shapes(model.spec):
        value = np.asarray(weights[name], np.float32)
        native[name] = paddle.to_tensor(np.ascontiguousarray(value.T if name == _HEAD_WEIGHT else value), place=place)
    return native


def from_native(model: NiN, native: dict[str, paddle.Tensor]) -> nin.weights.Weights:
    """The inverse of ``to_native``: ``{name: float32 ndarray}`` in canonical order and layout."""
    out = {}
    for name in nin.weight_shapes(model.spec):
        value = _numpy(native[name])
        out[name] = np.ascontiguousarray(value.T) if name == _HEAD_WEIGHT else value
    return out


def native_parameters(model: NiN) -> dict[str, paddle.Tensor]:
    """The model's trainable parameters by canonical name, in canonical order."""
    params = dict(model.named_parameters())
    return {name: params[name] for name in nin.weight_shapes(model.spec)}


def native_input(model: NiN, x) -> paddle.Tensor:
    """``x`` checked against the spec, as a float32 tensor on the model's place."""
    x = nin.check_input(model.spec, x)
    return paddle.to_tensor(np.ascontiguousarray(x), place=_place(model))


def native_labels(model: NiN, labels, n: int) -> paddle.Tensor:
    """Class labels checked against the spec for a batch of ``n``, int64 on the model's place."""
    return paddle.to_tensor(nin.check_labels(model.spec, labels, n), place=_place(model))


def compute_scope(model: NiN):
    """The context a native call of ``model`` runs in: automatic mixed precision off, so the
    float32 model computes in float32 whatever the caller enabled.  (Paddle runs an operation
    where its inputs are, so the place needs no scope.)"""
    return paddle.amp.auto_cast(enable=False)


def _run(model: NiN, x: paddle.Tensor, train: bool) -> paddle.Tensor:
    """``model(x)`` in training or evaluation mode, leaving the model's mode as it was."""
    was_training = model.training
    _set_mode(model, train)
    try:
        with compute_scope(model):
            return model(x)
    finally:
        _set_mode(model, was_training)


def _set_mode(model: NiN, train: bool) -> None:
    """Paddle's ``Layer.train()`` takes no flag: one or the other call."""
    if train:
        model.train()
    else:
        model.eval()


def forward(model: NiN, x, train: bool = False) -> np.ndarray:
    """Logits ``(N, num_classes)`` float32; ``train=True`` applies dropout with a fresh mask."""
    x = native_input(model, x)
    with paddle.no_grad():
        return _numpy(_run(model, x, train))


def intermediates(model: NiN, x) -> dict[str, np.ndarray]:
    """``{layer name: NCHW float32 array}`` for every layer of ``nin.layer_table``, in order,
    recorded by forward post-hooks in evaluation mode."""
    x = native_input(model, x)
    names = [row.name for row in nin.layer_table(model.spec, x.shape[2:])]
    acts: dict[str, np.ndarray] = {}

    def record(name, layer, inputs, output):
        acts[name] = _numpy(output)

    # a block's canonical `block{b}.conv{c}` is the output after ReLU: sublayer `block{b}.relu{c}`
    sublayers = dict(model.named_sublayers())
    handles = [
        sublayers[name.replace(".conv", ".relu")].register_forward_post_hook(partial(record, name)) for name in names
    ]
    try:
        with paddle.no_grad():
            _run(model, x, train=False)
    finally:
        for handle in handles:
            handle.remove()
    return {name: acts[name] for name in names}


def param_count(model: NiN) -> int:
    """Parameters as Paddle lists them."""
    return sum(math.prod(p.shape) for p in model.parameters())


def loss_and_grads(model: NiN, x, labels) -> tuple[float, nin.weights.Weights]:
    """Mean softmax cross-entropy in evaluation mode and its gradient for every canonical
    weight, in canonical order and layout (``paddle.grad``: the parameters' ``.grad`` are
    left untouched)."""
    x = native_input(model, x)
    target = native_labels(model, labels, len(x))
    params = native_parameters(model)
    loss = F.cross_entropy(_run(model, x, train=False), target)
    grads = dict(zip(params, paddle.grad(loss, list(params.values())), strict=True))
    return float(loss), from_native(model, grads)


def framework_version() -> str:
    return f"paddle {paddle.__version__}"


def gpu_available() -> bool:
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def gpu_missing_reason() -> str | None:
    """Why Paddle sees no GPU, in one line (a CPU-only build, no driver, ...); ``None`` if it sees one."""
    if gpu_available():
        return None
    version = f"paddle {paddle.__version__}"
    if not paddle.device.is_compiled_with_cuda():
        return (
            f"{version} is a CPU-only build (paddle.device.is_compiled_with_cuda() is False): "
            f"install paddlepaddle-gpu for your CUDA version"
        )
    driver = cuda_driver_problem()
    if driver:
        return f"{version} (built for CUDA {paddle.version.cuda()}) finds no GPU: {driver}"
    return f"{version} (built for CUDA {paddle.version.cuda()}) finds no GPU although the driver offers one"


# -- host hooks: what framework-free code (nin.bench, nin.compare) asks of the framework -----------


def set_threads(threads: int) -> None:
    """Give Paddle's CPU math (MKL and OpenMP) ``threads`` threads."""
    paddle.base.core.set_num_threads(threads)


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    """A call computing ``a @ b`` with ``paddle.matmul`` on ``device`` and waiting for the
    product; float32 only (``check_precision``)."""
    check_precision("paddle", dtype)
    place = _device(device)
    ta, tb = (paddle.to_tensor(m, place=place) for m in (a, b))

    def product() -> None:
        paddle.matmul(ta, tb)
        if isinstance(place, paddle.CUDAPlace):
            paddle.device.synchronize()

    return product


def device_peak_mb(device: str) -> float | None:
    """The most device memory this process has held for tensors, in MiB (None on the CPU,
    where the process's peak RSS says it)."""
    return paddle.device.cuda.max_memory_allocated() / 2**20 if device == "gpu" else None


def device_name(device: str) -> str:
    """What ``device`` is on this machine, e.g. "NVIDIA H200" (the CPU: "cpu")."""
    if device != "gpu":
        return "cpu"
    _device(device)
    return paddle.device.cuda.get_device_name(0)


def synchronize() -> None:
    """Wait for every computation this process has queued: Paddle runs each CPU kernel before
    returning, so only a GPU's stream is waited for."""
    if gpu_available():
        paddle.device.synchronize()
