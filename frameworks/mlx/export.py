"""MLX's own deployment format for a ``NiN``: ``mx.export_function``'s ``.mlxfn`` file, the
traced graph of the evaluation-mode forward pass with the parameters inside it.

The file runs without nin-suite: ``mx.import_function(path)`` gives a function of an NCHW
float32 batch of one example (``(1, C, H, W)``) returning ``(logits,)``.  MLX's exporter can
leave a dimension free only where every operation can infer its output shape from its
inputs' (``shapeless=True``), and padding (``Pad``) and the pools' windows (``AsStrided``)
cannot ("[Primitive::output_shapes] Pad cannot infer output shapes", mlx 0.32.4; ``mx.vmap``
of the imported function fails on ``AsStrided`` too), so the graph is traced for one example
and ``run_exported`` calls it once per example.  MLX has no ONNX exporter of its own, so
``export_onnx`` says so (``nin.onnx`` writes the graph).
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np

from nin.errors import BackendUnavailable
from nin.frameworks import backend_record, export_formats

from .model import NiN

FORMATS = export_formats("mlx")


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"the mlx backend exports {', '.join(FORMATS)}; got {format!r}")


def export_model(model: NiN, path: str | Path, format: str = "mlxfn") -> Path:
    """Write ``model``'s evaluation-mode forward pass, for one NCHW / NCDHW float32 example, to
    ``path`` with ``mx.export_function`` (``format`` one of ``FORMATS``).  ``nin.export`` calls
    this on a temporary path and renames it into place."""
    _check_format(format)
    spec, was_training = model.spec, model.training
    model.eval()

    def serve(x: mx.array) -> mx.array:
        return model(mx.moveaxis(x, 1, -1))

    try:
        mx.export_function(str(path), serve, mx.zeros((1, spec.in_channels, *spec.input_size)))
    finally:
        model.train(was_training)
    return Path(path)


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    """Reload a file written by ``export_model`` with ``mx.import_function`` alone and run it
    on an NCHW batch, one example at a time, evaluated together."""
    _check_format(format)
    serve = mx.import_function(str(path))
    batch = mx.array(np.ascontiguousarray(x, np.float32))
    logits = mx.concatenate([serve(batch[i : i + 1])[0] for i in range(batch.shape[0])])
    mx.eval(logits)
    return np.array(logits)


def export_onnx(model: NiN, path: str | Path) -> Path:
    """Not available: MLX has no ONNX exporter (see the module docstring)."""
    raise BackendUnavailable(backend_record("mlx").lacks["onnx_export"])
