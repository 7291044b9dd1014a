"""nin-suite: Network in Network (Lin, Chen, Yan 2014, arXiv:1312.4400) written once as a
framework-free spec, built natively in PyTorch, TensorFlow/Keras, JAX/Flax and MXNet/Gluon,
and checked by one conformance suite against a NumPy oracle: parameter counts, every layer's
output, the logits, every weight's gradient and the training update.

``import nin`` imports NumPy and nothing heavier; a framework is imported only when its
backend is asked for (``nin.get_backend("torch")``).
"""

from __future__ import annotations

from .errors import (
    BackendUnavailable,
    DataError,
    InputError,
    MissingExtra,
    NinError,
    SpecError,
    UnknownNameError,
    WeightsError,
)
from .pretrained_weights import pretrained, pretrained_models
from .shapes import check_input, check_labels, layer_table, mac_count, min_input_size, output_shapes, param_count
from .spec import (
    AvgPool,
    Conv,
    Dropout,
    GlobalAvgPool,
    Linear,
    MaxPool,
    NiNBlock,
    NiNSpec,
    avg_pool,
    max_pool,
    nin_block,
)
from .weights import init_weights, load_weights, save_weights, validate_weights, weight_shapes
from .zoo import get_spec, list_models

__version__ = "0.1.0"


def list_backends() -> list[str]:
    """The framework backends the registry knows (this repository's and those installed through
    the ``nin.backends`` entry points); the inference-only runtimes (onnxruntime) are in
    ``nin.frameworks.list_runtimes()``."""
    from .frameworks import list_backends

    return list_backends()


def available_backends() -> list[str]:
    """The backends whose framework is installed (found without importing it)."""
    from .frameworks import available_backends

    return available_backends()


def get_backend(name: str):
    """The adapter module of a backend; imports its framework on first use."""
    from .frameworks import get_backend

    return get_backend(name)


def create_model(name: str, backend: str, *, seed: int = 0, device: str = "cpu", init: str = "xavier", **overrides):
    """The native model of a zoo config, e.g. a ``torch.nn.Module``:
    ``nin.create_model("nin_cifar10", backend="torch")``."""
    return get_backend(backend).build(get_spec(name, **overrides), seed=seed, device=device, init=init)


__all__ = [
    "AvgPool",
    "BackendUnavailable",
    "Conv",
    "DataError",
    "Dropout",
    "GlobalAvgPool",
    "InputError",
    "Linear",
    "MaxPool",
    "MissingExtra",
    "NiNBlock",
    "NinError",
    "NiNSpec",
    "SpecError",
    "UnknownNameError",
    "WeightsError",
    "available_backends",
    "avg_pool",
    "check_input",
    "check_labels",
    "create_model",
    "get_backend",
    "get_spec",
    "init_weights",
    "layer_table",
    "list_backends",
    "list_models",
    "load_weights",
    "mac_count",
    "max_pool",
    "min_input_size",
    "nin_block",
    "output_shapes",
    "param_count",
    "pretrained",
    "pretrained_models",
    "save_weights",
    "validate_weights",
    "weight_shapes",
]
