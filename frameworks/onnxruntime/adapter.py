"""The inference half of the backend contract (frameworks/README.md) on onnxruntime.

The model is the ONNX graph of ``nin.onnx`` (canonical weights as initializers, channels
first), run by an ``onnxruntime.InferenceSession`` on the CPU.  One session per input size
and kind (logits only, or every layer as an output) is built on first use and kept until the
weights change.  No training: ``loss_and_grads`` raises, and ``backend_trains`` is False.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

import nin
from nin import onnx as nin_onnx
from nin.errors import BackendUnavailable, NinError
from nin.frameworks import check_precision, gpu_probes, list_backends

DEVICES = ("cpu",)


class OnnxNiN:
    """A NiN as an ONNX graph with its onnxruntime sessions.  ``spec`` and the canonical
    ``weights`` define it; ``model`` is the ``onnx.ModelProto`` (logits only) at the spec's
    input size."""

    def __init__(self, spec: nin.NiNSpec, weights: nin.weights.Weights):
        self.spec = spec
        self._sessions: dict[tuple[tuple[int, ...], bool], ort.InferenceSession] = {}
        self.set_weights(weights)

    def set_weights(self, weights: nin.weights.Weights) -> None:
        self.model = nin_onnx.to_model(self.spec, weights)
        self._sessions.clear()

    def session(self, input_size: tuple[int, ...], intermediates: bool) -> ort.InferenceSession:
        """The session for inputs of ``input_size``, with every layer as an output if asked."""
        key = (input_size, intermediates)
        if key not in self._sessions:
            model = self.model
            if intermediates or input_size != self.spec.input_size:
                spec = self.spec.replace(input_size=input_size)
                model = nin_onnx.to_model(
                    spec, nin_onnx.extract_weights(self.model, self.spec), intermediates=intermediates
                )
            options = ort.SessionOptions()
            options.intra_op_num_threads = _threads or int(os.environ.get("OMP_NUM_THREADS", 0) or 0)
            options.log_severity_level = 3
            self._sessions[key] = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[key]


def build(
    spec: nin.NiNSpec, seed: int = 0, device: str = "cpu", init: str = "xavier", precision: str = "float32"
) -> OnnxNiN:
    """An ``OnnxNiN`` holding ``nin.init_weights(spec, seed, init)``; CPU, float32 only."""
    check_precision("onnxruntime", precision)
    if device not in DEVICES:
        raise BackendUnavailable(
            f"the onnxruntime backend runs on the CPU only (device='cpu'); got device={device!r}. "
            f"For a GPU, use one of: {', '.join(gpu_probes())}"
        )
    return OnnxNiN(spec, nin.init_weights(spec, seed, init))


def load_state(model: OnnxNiN, weights: nin.weights.Weights) -> None:
    """Put canonical weights (validated first) into the graph's initializers."""
    model.set_weights(weights)


def export_state(model: OnnxNiN) -> nin.weights.Weights:
    """The canonical weights, read back from the graph's initializers (bit-exact)."""
    return nin_onnx.extract_weights(model.model, model.spec)


def _input(model: OnnxNiN, x) -> np.ndarray:
    return np.ascontiguousarray(nin.check_input(model.spec, x), dtype=np.float32)


def forward(model: OnnxNiN, x, train: bool = False) -> np.ndarray:
    """Logits ``(N, num_classes)`` float32, in inference mode (dropout is the identity)."""
    if train:
        raise NinError(
            "the onnxruntime backend runs inference only: forward(train=True) (dropout masks) needs a "
            f"training backend: {', '.join(list_backends())}"
        )
    x = _input(model, x)
    (logits,) = model.session(tuple(x.shape[2:]), False).run([nin_onnx.OUTPUT], {nin_onnx.INPUT: x})
    return logits


def intermediates(model: OnnxNiN, x) -> dict[str, np.ndarray]:
    """``{layer name: NCHW float32 array}`` for every layer of ``nin.layer_table``, in order:
    the graph outputs of the same name."""
    x = _input(model, x)
    names = [row.name for row in nin.layer_table(model.spec, x.shape[2:])]
    values = model.session(tuple(x.shape[2:]), True).run(names, {nin_onnx.INPUT: x})
    return dict(zip(names, values, strict=True))


def run_file(path, x: np.ndarray) -> np.ndarray:
    """Logits of the ONNX file at ``path`` (any graph with ``nin.onnx``'s input and output
    names, e.g. one ``nin export --format onnx`` wrote) for an NCHW float32 batch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run([nin_onnx.OUTPUT], {nin_onnx.INPUT: np.asarray(x, np.float32)})
    return logits


def param_count(model: OnnxNiN) -> int:
    """The number of values in the initializers the graph's nodes read (``nin.onnx.param_count``)."""
    return nin_onnx.param_count(model.model)


def loss_and_grads(model: OnnxNiN, x, labels) -> tuple[float, nin.weights.Weights]:
    """Not available: onnxruntime here runs inference only."""
    raise NinError(
        "the onnxruntime backend runs inference only and has no gradients; "
        f"use one of: {', '.join(list_backends())} (nin.frameworks.backend_trains(name))"
    )


def framework_version() -> str:
    import onnx

    return f"onnxruntime {ort.__version__} (onnx {onnx.__version__}, opset {nin_onnx.OPSET})"


def gpu_available() -> bool:
    """False: this backend uses onnxruntime's CPU execution provider only."""
    return False


def gpu_missing_reason() -> str:
    """Always a reason: this backend runs on onnxruntime's CPU execution provider only."""
    return "the onnxruntime backend runs on onnxruntime's CPU execution provider only"


# -- host hooks (frameworks/README.md): onnxruntime sizes its thread pool per session -----------------

_threads = 0  # 0: onnxruntime's default (all cores), or OMP_NUM_THREADS where set


def set_threads(n: int) -> None:
    """Threads for the sessions created from now on (``intra_op_num_threads``)."""
    global _threads
    _threads = int(n)


def synchronize() -> None:
    """Nothing to wait for: ``InferenceSession.run`` returns finished host arrays."""


def device_peak_mb(device: str = "cpu") -> None:
    """``None``: this runtime runs on the CPU only, where the peak RSS says it."""
    return None


def device_name(device: str = "cpu") -> str:
    if device != "cpu":
        raise nin.BackendUnavailable(f"the onnxruntime backend runs on the CPU only; got device={device!r}")
    return "cpu"
