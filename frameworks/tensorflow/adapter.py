"""The conformance contract (frameworks/README.md) for the TensorFlow/Keras 3 backend.

All layout conversion lives here: NCHW batches ↔ the model's NHWC (NCDHW ↔ NDHWC), canonical
(out, in, kh, kw) kernels ↔ Keras' HWIO, and the fully connected head's rows, canonical in
(C, H, W) flatten order ↔ Keras' (H, W, C).  A ``Dense`` kernel over flattened NHWC features,
reshaped to (H, W, C, out), is the HWIO kernel of a convolution covering the whole feature map,
so the head converts exactly like a convolution.

Forward passes, intermediates and gradients run as ``tf.function`` graphs, traced once per
model, mode and input size, for any batch size (the batch axis is ``None`` in the signature).
"""

from __future__ import annotations

import math
from functools import partial

import keras
import numpy as np
import tensorflow as tf

import nin
from nin.checks import cuda_driver_problem
from nin.frameworks import check_precision

from .model import NiN

if keras.backend.backend() != "tensorflow":
    raise nin.BackendUnavailable(
        f"the tensorflow backend needs Keras' TensorFlow backend, but Keras is set to "
        f"{keras.backend.backend()!r} (KERAS_BACKEND or ~/.keras/keras.json); "
        f"set KERAS_BACKEND=tensorflow before Keras is first imported"
    )

DEVICES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> NiN:
    """The Keras model of ``spec`` on ``device`` ("cpu" or "gpu"), its weights set to
    ``nin.init_weights(spec, seed, init)``.  On a GPU, TF32 is turned off (float32 matmuls).
    Only ``precision="float32"`` is implemented here."""
    check_precision("tensorflow", precision)
    weights = nin.init_weights(spec, seed, init)
    placement = _device(device)
    with tf.device(placement):
        model = NiN(spec)
    model._nin_compiled = _Compiled(model, placement)
    load_state(model, weights)
    return model


def _device(device: str) -> str:
    """The TensorFlow device name of contract device "cpu" or "gpu" (TF32 off on a GPU)."""
    if device not in DEVICES:
        raise nin.UnknownNameError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")
    if device == "gpu":
        if not gpu_available():
            raise nin.BackendUnavailable(
                f"device='gpu' needs a GPU visible to TensorFlow {tf.__version__}, and "
                f"tf.config.list_physical_devices('GPU') is empty (the tensorflow-cpu wheel has no GPU "
                f"support: install 'tensorflow[and-cuda]' on a CUDA machine), or use device='cpu'"
            )
        tf.config.experimental.enable_tensor_float_32_execution(False)
    return DEVICES[device]


def load_state(model: NiN, weights: nin.weights.Weights) -> None:
    """Set the model's weights from canonical ones (validated first: the error names every
    missing, unexpected and mis-shaped tensor)."""
    weights = nin.validate_weights(model.spec, weights)
    for variable, value in zip(native_parameters(model), to_native(model, weights), strict=True):
        variable.assign(value)


def export_state(model: NiN) -> nin.weights.Weights:
    """The model's weights in canonical names, order and layout, as float32 arrays."""
    return from_native(model, [variable.numpy() for variable in native_parameters(model)])


def forward(model: NiN, x: np.ndarray, train: bool = False) -> np.ndarray:
    """Logits (N, num_classes) for an NCHW (NCDHW) batch; ``train=True`` applies dropout with
    a fresh mask on every call."""
    x = native_input(model, x)
    return _compiled(model).run("train" if train else "eval", x).numpy()


def intermediates(model: NiN, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output in evaluation mode, channels first, in ``nin.layer_table`` order."""
    x = native_input(model, x)
    outputs = _compiled(model).run("intermediates", x)
    return {name: _channels_first(outputs[name].numpy()) for name in nin.output_shapes(model.spec, x.shape[1:-1])}


def param_count(model: NiN) -> int:
    """Parameters counted from Keras' own list of trainable weights."""
    return sum(math.prod(variable.shape) for variable in model.trainable_weights)


def loss_and_grads(model: NiN, x: np.ndarray, labels: np.ndarray) -> tuple[float, nin.weights.Weights]:
    """Mean softmax cross-entropy in evaluation mode and its gradient for every canonical
    weight, in canonical names, order and layout (float32)."""
    x = native_input(model, x)
    labels = native_labels(model, labels, len(x)).astype(np.int32)
    compiled = _compiled(model)
    loss, grads = compiled.run("grads", x, labels)
    return float(loss), from_native(model, [grad.numpy() for grad in grads])


def framework_version() -> str:
    return f"tensorflow {tf.__version__} (keras {keras.__version__})"


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def gpu_missing_reason() -> str | None:
    """Why TensorFlow sees no GPU, in one line (a CPU-only build, no driver, ...); ``None`` if it sees one."""
    if gpu_available():
        return None
    version = f"tensorflow {tf.__version__}"
    if not tf.test.is_built_with_cuda():
        return (
            f"{version} is a CPU-only build (tf.test.is_built_with_cuda() is False): pip install 'tensorflow[and-cuda]'"
        )
    driver = cuda_driver_problem()
    if driver:
        return f"{version} finds no GPU: {driver}"
    return f"{version} finds no GPU although the driver offers one: tf.config.list_physical_devices('GPU') is empty"


# -- the native half of the contract: the framework's own objects, for train.py and distributed.py


def native_input(model: NiN, x) -> np.ndarray:
    """``x`` checked against the spec, as a contiguous channels-last (NHWC / NDHWC) float32
    array, which Keras layers and ``tf.constant`` take as they are."""
    return np.ascontiguousarray(np.moveaxis(nin.check_input(model.spec, x), 1, -1))


def native_labels(model: NiN, labels, n: int) -> np.ndarray:
    """Class labels checked against the spec for a batch of ``n``, int64 (the dtype
    ``tf.nn.sparse_softmax_cross_entropy_with_logits`` and ``tf.argmax`` agree on)."""
    return nin.check_labels(model.spec, labels, n)


def to_native(model: NiN, weights: nin.weights.Weights) -> list[np.ndarray]:
    """Canonical tensors (weights, or momentum buffers: named and shaped like the weights) in
    the structure of ``native_parameters``: Keras' layout (HWIO kernels, the head's rows in
    (H, W, C) order), a list in the order of the model's variables."""
    return [_tensor_to_native(weights[name], features) for name, (_, features) in _compiled(model).slots.items()]


def from_native(model: NiN, native: list[np.ndarray]) -> nin.weights.Weights:
    """The inverse of ``to_native``: canonical names, order and layout, float32."""
    slots = _compiled(model).slots.items()
    return {
        name: _tensor_from_native(value, features) for (name, (_, features)), value in zip(slots, native, strict=True)
    }


def native_parameters(model: NiN) -> list[keras.Variable]:
    """The model's trainable Keras variables in canonical weight order."""
    return [variable for variable, _ in _compiled(model).slots.values()]


def compute_scope(model: NiN):
    """The context a native call of ``model`` runs in: ``tf.device`` of the device it was built
    on (TensorFlow would otherwise place new tensors and optimizer slots on its default)."""
    return tf.device(_compiled(model).placement)


# -- layouts ---------------------------------------------------------------------------------


def _channels_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


def _tensor_from_native(native: np.ndarray, features: tuple[int, ...] | None) -> np.ndarray:
    """HWIO kernel → (out, in, kh, kw); a head's (H·W·C, out) → (out, C·H·W); biases as they are.
    ``features`` is the head's input shape (C, H, W), None for a convolution."""
    if native.ndim == 1:
        return native.astype(np.float32)
    if features is not None:
        channels, *size = features
        out = native.shape[-1]
        return _tensor_from_native(native.reshape(*size, channels, out), None).reshape(out, -1)
    return np.ascontiguousarray(np.moveaxis(native, (-1, -2), (0, 1)), dtype=np.float32)


def _tensor_to_native(canonical: np.ndarray, features: tuple[int, ...] | None) -> np.ndarray:
    """The inverse of ``_tensor_from_native``."""
    if canonical.ndim == 1:
        return canonical
    if features is not None:
        out = canonical.shape[0]
        return _tensor_to_native(canonical.reshape(out, *features), None).reshape(-1, out)
    return np.ascontiguousarray(np.moveaxis(canonical, (0, 1), (-1, -2)))


# -- compiled functions ----------------------------------------------------------------------


class _Compiled:
    """What the adapter keeps per model: the device it runs on, its canonical weight slots
    (name → (Keras variable, head input shape or None)), and its ``tf.function`` graphs."""

    def __init__(self, model: NiN, placement: str):
        self.model, self.placement = model, placement
        self.slots = _slots(model)
        self._functions: dict[tuple[str, tuple[int, ...]], tf.types.experimental.PolymorphicFunction] = {}

    def run(self, what: str, x: np.ndarray, *args: np.ndarray):
        """Run graph ``what`` ("eval", "train", "intermediates" or "grads") on a NHWC batch."""
        key = (what, x.shape[1:])
        with tf.device(self.placement):
            if key not in self._functions:
                self._functions[key] = self._trace(what, x.shape[1:])
            return self._functions[key](tf.constant(x), *(tf.constant(a) for a in args))

    def _trace(self, what: str, sample_shape: tuple[int, ...]):
        x = tf.TensorSpec((None, *sample_shape), tf.float32, name="x")
        labels = tf.TensorSpec((None,), tf.int32, name="labels")
        variables = [variable for variable, _ in self.slots.values()]
        fn, signature = {
            "eval": (partial(self.model, training=False), [x]),
            "train": (partial(self.model, training=True), [x]),
            "intermediates": (partial(self.model.forward_intermediates, training=False), [x]),
            "grads": (partial(_mean_loss_and_grads, self.model, variables), [x, labels]),
        }[what]
        # Partials, not closures: TensorFlow counts traces per code object and would call one
        # trace per model "retracing".  jit_compile=True (XLA) costs more CPU time per nin_d2l
        # gradient step than TensorFlow's oneDNN kernels (docs/benchmarks.md, "Measured choices in the code").
        return tf.function(fn, input_signature=signature, jit_compile=False)


def _mean_loss_and_grads(model: NiN, variables: list, x: tf.Tensor, labels: tf.Tensor):
    """Mean softmax cross-entropy in evaluation mode and its gradient for ``variables``."""
    with tf.GradientTape() as tape:
        logits = model(x, training=False)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    return loss, tape.gradient(loss, variables)


def _compiled(model: NiN) -> _Compiled:
    """The model's ``_Compiled``, created on first use for a model not made by ``build``."""
    compiled = getattr(model, "_nin_compiled", None)
    if compiled is None:
        device = tf.DeviceSpec.from_string(model.trainable_weights[0].value.device).device_type
        compiled = model._nin_compiled = _Compiled(model, DEVICES["gpu" if device == "GPU" else "cpu"])
    return compiled


def _slots(model: NiN) -> dict[str, tuple[keras.Variable, tuple[int, ...] | None]]:
    """Canonical weight name → (Keras variable, the head's input shape (C, H, W) or None)."""
    slots = {}
    for name, layer in model.spec.named_layers():
        stage = model.get_layer(name)
        if isinstance(layer, nin.NiNBlock):
            for c in range(len(layer.convs)):
                conv = stage.get_layer(f"conv{c}")
                slots[f"{name}.conv{c}.weight"] = (conv.kernel, None)
                slots[f"{name}.conv{c}.bias"] = (conv.bias, None)
        elif isinstance(layer, nin.Linear):
            dense = stage.get_layer("dense")
            slots["head.weight"] = (dense.kernel, nin.shapes.head_input_shape(model.spec))
            slots["head.bias"] = (dense.bias, None)
    return slots


# -- host hooks: what framework-free code (nin.bench, nin.compare) asks of the framework -----------


def set_threads(threads: int) -> None:
    """Size TensorFlow's intra- and inter-op pools.  TensorFlow fixes them when its runtime
    starts (the first op); after that this changes nothing, and a new process gets them from
    ``nin.frameworks.thread_env`` instead."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime has started: its pools stay as they are
        pass


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    """A call computing ``a @ b`` with ``tf.linalg.matmul`` on ``device`` and copying the
    product to the host; float32 only (``check_precision``), TF32 off as ``build`` sets it."""
    check_precision("tensorflow", dtype)
    with tf.device(_device(device)):
        ta, tb = tf.constant(a), tf.constant(b)
    return lambda: tf.linalg.matmul(ta, tb).numpy()


def device_peak_mb(device: str) -> float | None:
    """The most device memory this process has held, in MiB (None on the CPU, where the
    process's peak RSS says it)."""
    if device != "gpu":
        return None
    return tf.config.experimental.get_memory_info(_device(device).lstrip("/"))["peak"] / 2**20


def device_name(device: str) -> str:
    """What ``device`` is on this machine, e.g. "NVIDIA H200" (the CPU: "cpu")."""
    if device != "gpu":
        return "cpu"
    _device(device)
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return details.get("device_name", "gpu")


def synchronize() -> None:
    """Wait for every computation this process has queued (``tf.test.experimental.sync_devices``:
    eager TensorFlow on the CPU has none left; on a GPU its kernels may still run)."""
    tf.test.experimental.sync_devices()
