"""The conformance contract for JAX/Flax (see frameworks/README.md).

Flax modules hold no state, so the "model" here is a ``FlaxNiN``: the ``NiN`` module, its
parameter tree, the device it lives on and a dropout PRNG key that advances on every
training-mode forward.  All layout conversion happens in this file:

* input: NCHW (NCDHW) → NHWC (NDHWC), inside the compiled functions;
* convolution kernels: canonical (out, in, kh, kw) ↔ Flax HWIO, and a 1×1 convolution's
  (out, in, 1, 1) ↔ the (in, out) kernel of its ``nn.Dense``;
* the fully connected head: canonical ``head.weight`` is (out, C·H·W) over (C, H, W)-flattened
  features; the Flax model flattens its native (H, W, C) activations, so the rows are permuted
  to (H·W·C, out) here rather than transposing activations in the model;
* activations out: NHWC → NCHW, and float32 also from a bfloat16 model.

The forward, intermediate and gradient functions are ``jax.jit``-compiled once per
(module, input shape): modules hash by value, so every model built from equal specs shares
the compiled code.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass, field

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import nin
from nin.checks import cuda_driver_problem
from nin.frameworks import check_precision
from nin.weights import Weights

from .model import NiN, pointwise

DEVICES = ("cpu", "gpu")
# ``build``'s precision -> the Flax modules' computation dtype (None: the float32 of the parameters)
_COMPUTE_DTYPES = {"float32": None, "bf16": jnp.bfloat16}


@dataclass
class FlaxNiN:
    """A built network: ``module.apply({"params": params}, x_nhwc, train=...)`` runs it.

    ``key`` is split on every ``forward(..., train=True)`` so each call draws a fresh dropout
    mask; evaluation never touches it."""

    module: NiN
    params: dict = field(repr=False)
    device: jax.Device
    key: jax.Array = field(repr=False)

    @property
    def spec(self) -> nin.NiNSpec:
        return self.module.spec


# -- layout conversion ---------------------------------------------------------------------------


def _channels_last(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, 1, -1)


def _channels_first(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, -1, 1) if x.ndim > 2 else x


def _head_rows(spec: nin.NiNSpec) -> np.ndarray:
    """For each row of the native (H, W, C)-flattened head kernel, the canonical (C, H, W)
    feature index it holds."""
    chw = nin.shapes.head_input_shape(spec)
    return np.arange(math.prod(chw)).reshape(chw).transpose(*range(1, len(chw)), 0).reshape(-1)


def _convs(spec: nin.NiNSpec) -> dict[str, nin.Conv]:
    """Every convolution of ``spec`` by canonical layer name (``block0.conv1``)."""
    return {
        f"{name}.conv{c}": conv
        for name, layer in spec.named_layers()
        if isinstance(layer, nin.NiNBlock)
        for c, conv in enumerate(layer.convs)
    }


def _path(spec: nin.NiNSpec, name: str) -> tuple[str, ...]:
    """Canonical name → path in the Flax parameter tree (see ``model.py``):
    ``block0.conv1.weight`` → ``("block0", "ConvReLU_1", "Dense_0", "kernel")`` (a 1×1
    convolution; ``"Conv_0"`` for any other), ``block0.conv1.bias`` → ``("block0",
    "ConvReLU_1", "bias")``, ``head.bias`` → ``("Dense_0", "bias")``."""
    *layer, leaf = name.split(".")
    leaf = "kernel" if leaf == "weight" else "bias"
    if layer == ["head"]:
        return ("Dense_0", leaf)
    block, conv = layer
    module = (block, f"ConvReLU_{conv.removeprefix('conv')}")
    if leaf == "bias":
        return (*module, leaf)
    return (*module, "Dense_0" if pointwise(_convs(spec)[f"{block}.{conv}"]) else "Conv_0", leaf)


def _lookup(tree, path: tuple[str, ...] | list[str]):
    """``tree[path[0]][path[1]]...``"""
    return functools.reduce(lambda node, key: node[key], path, tree)


def to_native(model: FlaxNiN, weights: Weights) -> dict:
    """Canonical tensors (weights, or momentum buffers: named and shaped like the weights) in
    the structure of ``native_parameters``: a Flax parameter tree in Flax's layout (HWIO
    kernels, the head's rows in (H, W, C) order), on the model's device."""
    spec = model.spec
    tree: dict = {}
    for name, value in weights.items():
        *parents, leaf = _path(spec, name)
        if name == "head.weight":
            value = value.T[_head_rows(spec)]
        elif name.endswith(".weight"):
            value = value.transpose(*range(2, value.ndim), 1, 0)  # (out, in, *k) → (*k, in, out)
            if parents[-1] == "Dense_0":
                value = value.reshape(value.shape[-2:])
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return jax.device_put(tree, model.device)


def from_native(model: FlaxNiN, tree) -> Weights:
    """The inverse of ``to_native``: canonical names, order and layout, float32."""
    spec = model.spec
    weights: Weights = {}
    for name, shape in nin.weight_shapes(spec).items():
        value = np.asarray(_lookup(tree, _path(spec, name)), dtype=np.float32)
        if name == "head.weight":
            rows = np.empty_like(value)
            rows[_head_rows(spec)] = value
            value = rows.T
        elif name.endswith(".weight"):
            value = value.reshape(*shape[2:], *value.shape[-2:])  # a Dense kernel gets its 1×1 back
            value = value.transpose(value.ndim - 1, value.ndim - 2, *range(value.ndim - 2))
        # A copy: np.asarray of a CPU jax.Array is a read-only view of its buffer, which would
        # also keep the buffer from being donated to a training step.
        weights[name] = np.array(value, order="C")
    return weights


# -- compiled functions ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("module", "train"))
def apply_logits(module: NiN, params, x, key, train: bool):
    """float32 logits, whatever the module computes in (a bfloat16 model's go back to float32
    for the loss)."""
    logits = module.apply({"params": params}, _channels_last(x), train=train, rngs={"dropout": key} if train else None)
    return logits.astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("module",))
def _intermediates(module: NiN, params, x):
    _, state = module.apply({"params": params}, _channels_last(x), train=False, mutable=["intermediates"])
    return jax.tree.map(lambda a: _channels_first(a).astype(jnp.float32), state["intermediates"])


def _loss(params, module: NiN, x, labels):
    logits = apply_logits(module, params, x, None, train=False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


_loss_and_grads = jax.jit(jax.value_and_grad(_loss), static_argnames=("module",))


# -- the contract ----------------------------------------------------------------------------------


def _device(device: str) -> jax.Device:
    """The JAX device of contract device "cpu" or "gpu"."""
    if device not in DEVICES:
        raise nin.UnknownNameError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")
    if device == "gpu" and not gpu_available():
        raise nin.BackendUnavailable(f"device='gpu' needs a GPU: {gpu_missing_reason()}; or use device='cpu'")
    return jax.local_devices(backend=device)[0]  # this process's, also in a multi-process job


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> FlaxNiN:
    """A ``FlaxNiN`` on ``device`` with ``nin.init_weights(spec, seed, init)`` loaded.  On the
    GPU every float32 convolution and the head run at ``Precision.HIGHEST`` (no TF32);
    ``precision="bf16"`` computes in bfloat16 from float32 parameters (the module's ``dtype``)."""
    dtype = _COMPUTE_DTYPES[check_precision("jax", precision)]
    place = _device(device)
    # HIGHEST asks for full float32 passes; bfloat16 operands need no such request
    lax_precision = lax.Precision.HIGHEST if device == "gpu" and dtype is None else None
    weights = nin.init_weights(spec, seed, init)
    module = NiN(spec, precision=lax_precision, dtype=dtype)
    model = FlaxNiN(module, {}, place, jax.device_put(jax.random.key(seed), place))
    load_state(model, weights)
    return model


def load_state(model: FlaxNiN, weights: Weights) -> None:
    """Replace the parameters with canonical weights (validated first)."""
    weights = nin.validate_weights(model.spec, weights)
    model.params = to_native(model, weights)


def export_state(model: FlaxNiN) -> Weights:
    """Canonical weights, float32, in canonical order and layout."""
    return from_native(model, model.params)


# -- the native half of the contract: the framework's own objects, for train.py and distributed.py
# (``to_native`` and ``from_native`` are with the layouts above, ``apply_logits`` with the compiled
# functions: Flax modules hold no state, so the training step differentiates that pure function
# of the parameters where the other backends call their model object)


def native_parameters(model: FlaxNiN) -> dict:
    """The model's trainable parameters: its Flax parameter tree (``model.params``)."""
    return model.params


def native_input(model: FlaxNiN, x) -> jax.Array:
    """``x`` checked against the spec, as a float32 array on the model's device, still NCHW
    (the compiled functions move the channels last)."""
    return jax.device_put(nin.check_input(model.spec, x), model.device)


def native_labels(model: FlaxNiN, labels, n: int) -> jax.Array:
    """Class labels checked against the spec for a batch of ``n``, int32 on the model's device."""
    return jax.device_put(nin.check_labels(model.spec, labels, n).astype(np.int32), model.device)


def compute_scope(model: FlaxNiN):
    """The context a native call of ``model`` runs in: ``jax.default_device`` of its device
    (its parameters and inputs are already there; this places whatever else a call creates)."""
    return jax.default_device(model.device)


def forward(model: FlaxNiN, x, train: bool = False) -> np.ndarray:
    """Logits (N, num_classes), float32; ``train=True`` draws a fresh dropout mask."""
    x = native_input(model, x)
    dropout_key = None
    if train:
        model.key, dropout_key = jax.random.split(model.key)
    return np.asarray(apply_logits(model.module, model.params, x, dropout_key, train))


def intermediates(model: FlaxNiN, x) -> dict[str, np.ndarray]:
    """Every layer's output in evaluation mode, NCHW float32, in ``nin.layer_table`` order."""
    sown = _intermediates(model.module, model.params, native_input(model, x))
    out = {}
    for row in nin.layer_table(model.spec, np.shape(x)[2:]):
        (value,) = _lookup(sown, row.name.split("."))  # sow keeps a tuple of every value sown
        out[row.name] = np.asarray(value)
    return out


def param_count(model: FlaxNiN) -> int:
    """Parameters as Flax creates them: the leaves of the module's own ``init`` (shapes only,
    through ``jax.eval_shape``), not of ``model.params``, which ``load_state`` built from the
    spec's canonical shapes and so could only agree with the spec."""
    spec = model.spec
    x = jax.ShapeDtypeStruct((1, *spec.input_size, spec.in_channels), jnp.float32)  # NHWC, as apply gets it
    variables = jax.eval_shape(functools.partial(model.module.init, train=False), jax.random.key(0), x)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables["params"]))


def loss_and_grads(model: FlaxNiN, x, labels) -> tuple[float, Weights]:
    """Mean softmax cross-entropy (evaluation mode) and its gradient per canonical weight."""
    x = native_input(model, x)
    labels = native_labels(model, labels, len(x))
    loss, grads = _loss_and_grads(model.params, model.module, x, labels)
    return float(loss), from_native(model, grads)


def framework_version() -> str:
    return f"jax {jax.__version__} (flax {flax.__version__}, optax {optax.__version__})"


def gpu_available() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def gpu_missing_reason() -> str | None:
    """Why JAX sees no GPU, in one line (no CUDA plugin, no driver, ...); ``None`` if it sees one."""
    try:
        if jax.devices("gpu"):
            return None
        error = "jax.devices('gpu') is empty"
    except RuntimeError as e:
        error = f"jax.devices('gpu') raises: {str(e).splitlines()[0]}"
    version = f"jax {jax.__version__}"
    plugins = [f"jax_cuda{v}_plugin" for v in (12, 13) if importlib.util.find_spec(f"jax_cuda{v}_plugin")]
    if not plugins:
        return f"{version} has no CUDA plugin (jax_cuda12_plugin, jax_cuda13_plugin: neither is installed): pip install 'jax[cuda13]' (or 'jax[cuda12]' for a CUDA 12 driver)"
    driver = cuda_driver_problem()
    if driver:
        return f"{version} with its plugin {plugins[0]} finds no GPU: {driver}"
    return f"{version} with its plugin {plugins[0]} finds no GPU although the driver offers one: {error}"


# -- host hooks: what framework-free code (nin.bench, nin.compare) asks of the framework -----------


def set_threads(threads: int) -> None:
    """Size XLA's CPU thread pool: XLA reads ``NPROC`` once, when JAX creates its CPU client
    (the first computation), so this works only before that; later calls change nothing.
    A new process gets it from ``nin.frameworks.thread_env``."""
    os.environ["NPROC"] = str(threads)


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    """A call computing ``a @ b`` with a jitted ``jnp.dot`` in ``dtype`` ("float32" or "bf16")
    on ``device``, waiting for the product; float32 at ``Precision.HIGHEST``, as the model
    computes (no TF32 on a GPU)."""
    place = _device(device)
    ja, jb = (jax.device_put(m.astype({"float32": jnp.float32, "bf16": jnp.bfloat16}[dtype]), place) for m in (a, b))
    product = jax.jit(functools.partial(jnp.dot, precision=lax.Precision.HIGHEST if dtype == "float32" else None))
    return lambda: product(ja, jb).block_until_ready()


def device_peak_mb(device: str) -> float | None:
    """The most device memory this process has held, in MiB (None on the CPU, where the
    process's peak RSS says it)."""
    if device != "gpu":
        return None
    return (_device(device).memory_stats() or {}).get("peak_bytes_in_use", 0) / 2**20


def device_name(device: str) -> str:
    """What ``device`` is on this machine, e.g. "NVIDIA H200" (the CPU: "cpu")."""
    return _device(device).device_kind if device == "gpu" else "cpu"


def synchronize() -> None:
    """Wait for every computation this process has dispatched (``jax.effects_barrier``); the
    suite's own calls already end in a host array or ``block_until_ready``."""
    jax.effects_barrier()
