"""The conformance contract for PyTorch (frameworks/README.md): canonical weights and NumPy
batches in and out of a native ``NiN``.

PyTorch is channels-first and ``NiN``'s ``state_dict`` keys are the canonical weight names in
the canonical layout, so the conversions here are only between NumPy and tensors.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

import nin
from nin.checks import cuda_driver_problem
from nin.frameworks import check_precision
from nin.heap import retain_freed_memory

from .model import NiN

DEVICES = ("cpu", "gpu")

# CPU tensors come from malloc: keep freed activations in the heap instead of re-mapping them
# every step (nin.heap)
retain_freed_memory()

# channels-last weights make every convolution and pool run channels-last (oneDNN's native
# layout on CPU), and a training step takes less time (docs/benchmarks.md, "Measured choices in
# the code").  Inputs and outputs stay NCHW.
_MEMORY_FORMAT = {2: torch.channels_last, 3: torch.channels_last_3d}


def _device(device: str) -> torch.device:
    """The torch device of contract device "cpu" or "gpu" (TF32 off on a GPU)."""
    if device == "cpu":
        return torch.device("cpu")
    if device == "gpu":
        reason = gpu_missing_reason()
        if reason:
            raise nin.BackendUnavailable(f"device='gpu' needs a CUDA GPU: {reason}; or use device='cpu'")
        # float32 means float32: TF32 would give ~1e-3 relative errors and fail conformance
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch.device("cuda")
    raise nin.UnknownNameError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> NiN:
    """A ``NiN`` in evaluation mode on ``device`` ("cpu" or "gpu"), its weights set to
    ``nin.init_weights(spec, seed, init)``.  ``precision="bf16"`` makes ``forward`` and
    ``Trainer.step`` run under ``torch.autocast`` to bfloat16; the parameters stay float32."""
    precision = check_precision("torch", precision)
    target = _device(device)
    weights = nin.init_weights(spec, seed, init)
    model = NiN(spec).to(target, memory_format=_MEMORY_FORMAT[spec.ndim]).eval()
    model.precision = precision
    load_state(model, weights)
    return model


def load_state(model: NiN, weights: nin.weights.Weights) -> None:
    """Copy canonical weights into ``model`` (validated first: every missing, unexpected and
    mis-shaped tensor is named)."""
    model.load_state_dict(to_native(model, nin.validate_weights(model.spec, weights)))


def export_state(model: NiN) -> nin.weights.Weights:
    """The canonical weights of ``model``: ``{name: float32 ndarray}`` in canonical order."""
    return from_native(model, model.state_dict())


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 copy that shares no memory with the model."""
    return t.detach().float().cpu().numpy().copy()


# -- the native half of the contract: the framework's own objects, for train.py and distributed.py


def to_native(model: NiN, weights: nin.weights.Weights) -> dict[str, torch.Tensor]:
    """Canonical tensors (weights, or momentum buffers: named and shaped like the weights) in
    the structure of ``native_parameters``: float32 tensors on the model's device, by canonical
    name (PyTorch's layout is canonical)."""
    device = next(model.parameters()).device
    return {name: torch.from_numpy(np.asarray(weights[name])).to(device) for name in nin.weight_shapes(model.spec)}


def from_native(model: NiN, native: dict[str, torch.Tensor]) -> nin.weights.Weights:
    """The inverse of ``to_native``: ``{name: float32 ndarray}`` in canonical order."""
    return {name: _numpy(native[name]) for name in nin.weight_shapes(model.spec)}


def native_parameters(model: NiN) -> dict[str, torch.nn.Parameter]:
    """The model's trainable parameters by canonical name, in canonical order."""
    params = dict(model.named_parameters())
    return {name: params[name] for name in nin.weight_shapes(model.spec)}


def native_input(model: NiN, x) -> torch.Tensor:
    """``x`` checked against the spec, as a float32 tensor on the model's device."""
    x = nin.check_input(model.spec, x)
    return torch.from_numpy(np.ascontiguousarray(x)).to(next(model.parameters()).device)


def native_labels(model: NiN, labels, n: int) -> torch.Tensor:
    """Class labels checked against the spec for a batch of ``n``, int64 on the model's device."""
    return torch.from_numpy(nin.check_labels(model.spec, labels, n)).to(next(model.parameters()).device)


def compute_scope(model: NiN) -> torch.autocast:
    """The context a native call of ``model`` runs in: autocast to bfloat16 on the model's
    device for a "bf16" model (float32 parameters), off for "float32"."""
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=model.precision == "bf16")


def _run(model: NiN, x: torch.Tensor, train: bool) -> torch.Tensor:
    """``model(x)`` in training or evaluation mode at the model's precision, leaving the
    model's mode as it was."""
    was_training = model.training
    model.train(train)
    try:
        with compute_scope(model):
            return model(x)
    finally:
        model.train(was_training)


def forward(model: NiN, x, train: bool = False) -> np.ndarray:
    """Logits ``(N, num_classes)`` float32; ``train=True`` applies dropout with a fresh mask."""
    x = native_input(model, x)
    with torch.inference_mode():
        return _numpy(_run(model, x, train))


def intermediates(model: NiN, x) -> dict[str, np.ndarray]:
    """``{layer name: NCHW float32 array}`` for every layer of ``nin.layer_table``, in order,
    recorded by forward hooks in evaluation mode."""
    x = native_input(model, x)
    names = [row.name for row in nin.layer_table(model.spec, x.shape[2:])]
    acts: dict[str, np.ndarray] = {}

    def record(name, module, inputs, output):
        acts[name] = _numpy(output)

    # a block's canonical `block{b}.conv{c}` is the output after ReLU: module `block{b}.relu{c}`
    modules = {name: model.get_submodule(name.replace(".conv", ".relu")) for name in names}
    handles = [module.register_forward_hook(partial(record, name)) for name, module in modules.items()]
    try:
        with torch.inference_mode():
            _run(model, x, train=False)
    finally:
        for handle in handles:
            handle.remove()
    return {name: acts[name] for name in names}


def param_count(model: NiN) -> int:
    """Parameters as PyTorch counts them."""
    return sum(p.numel() for p in model.parameters())


def loss_and_grads(model: NiN, x, labels) -> tuple[float, nin.weights.Weights]:
    """Mean softmax cross-entropy in evaluation mode and its gradient for every canonical
    weight, in canonical order.  The model's ``.grad`` fields are left untouched."""
    x = native_input(model, x)
    target = native_labels(model, labels, len(x))
    params = native_parameters(model)
    with torch.enable_grad():
        loss = F.cross_entropy(_run(model, x, train=False).float(), target)
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    return loss.item(), from_native(model, grads)


def framework_version() -> str:
    return f"torch {torch.__version__}"


def gpu_available() -> bool:
    return torch.cuda.is_available()


def gpu_missing_reason() -> str | None:
    """Why torch sees no GPU, in one line (a CPU-only build, no driver, ...); ``None`` if it sees one."""
    if gpu_available():
        return None
    version = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"{version} is a CPU-only build (torch.version.cuda is None): install a CUDA build of torch"
    driver = cuda_driver_problem()
    if driver:
        return f"{version} (built for CUDA {torch.version.cuda}) finds no GPU: {driver}"
    return (
        f"{version} (built for CUDA {torch.version.cuda}) finds no GPU although the driver offers one: "
        f"torch.cuda.is_available() is False (a driver too old for CUDA {torch.version.cuda}?)"
    )


# -- host hooks: what framework-free code (nin.bench, nin.compare) asks of the framework -----------


def set_threads(threads: int) -> None:
    """Give torch's intra-op pool ``threads`` threads (importing MXNet in the same process
    drops it to one, so callers set it after every import)."""
    torch.set_num_threads(threads)


def gemm_probe(a: np.ndarray, b: np.ndarray, device: str = "cpu", dtype: str = "float32"):
    """A call computing ``a @ b`` with ``torch.mm`` in ``dtype`` ("float32" or "bf16") on
    ``device``, waiting for the product; the device set up as ``build`` does (TF32 off)."""
    place = _device(device)
    ta, tb = (torch.from_numpy(m).to(place, {"float32": torch.float32, "bf16": torch.bfloat16}[dtype]) for m in (a, b))

    def product() -> None:
        torch.mm(ta, tb)
        if place.type == "cuda":
            torch.cuda.synchronize()

    return product


def device_peak_mb(device: str) -> float | None:
    """The most device memory this process has held for tensors, in MiB (None on the CPU,
    where the process's peak RSS says it)."""
    return torch.cuda.max_memory_allocated() / 2**20 if device == "gpu" else None


def device_name(device: str) -> str:
    """What ``device`` is on this machine, e.g. "NVIDIA H200" (the CPU: "cpu")."""
    return torch.cuda.get_device_name(_device(device)) if device == "gpu" else "cpu"


def synchronize() -> None:
    """Wait for every computation this process has queued: on the CPU PyTorch runs each op
    before returning, so only a GPU's queue is waited for."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
