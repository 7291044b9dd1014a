"""TensorFlow's own deployment format for a Keras ``NiN``: a SavedModel, and ``tf2onnx`` as a
cross-check of ``nin.onnx``.

The SavedModel's ``serve`` function (also its ``serving_default`` signature) takes the
canonical NCHW / NCDHW float32 batch, of any batch size, and returns the logits; the
transpose to Keras' channels-last layout happens inside.  It runs without nin-suite:
``tf.saved_model.load(path).serve(x)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from nin.frameworks import export_formats

from .model import NiN

FORMATS = export_formats("tensorflow")


def _serving_function(model: NiN) -> tf.types.experimental.GenericFunction:
    spec = model.spec
    perm = [0, *range(2, spec.ndim + 2), 1]  # NCHW → NHWC

    @tf.function(input_signature=[tf.TensorSpec([None, spec.in_channels, *spec.input_size], tf.float32, name="x")])
    def serve(x):
        return {"logits": model(tf.transpose(x, perm), training=False)}

    return serve


def export_model(model: NiN, path: str | Path, format: str = "savedmodel") -> Path:
    """Write ``model`` as a SavedModel directory at ``path`` (``format`` one of ``FORMATS``).
    ``nin.export`` calls this on a temporary path and renames it into place."""
    if format not in FORMATS:
        raise ValueError(f"the tensorflow backend exports {', '.join(FORMATS)}; got {format!r}")
    module = tf.Module()
    module.model = model
    module.serve = _serving_function(model)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return Path(path)


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    """Reload a SavedModel written by ``export`` with TensorFlow alone and run it on an NCHW batch."""
    if format not in FORMATS:
        raise ValueError(f"the tensorflow backend exports {', '.join(FORMATS)}; got {format!r}")
    loaded = tf.saved_model.load(str(path))
    return loaded.serve(tf.constant(np.asarray(x, np.float32)))["logits"].numpy()


def export_onnx(model: NiN, path: str | Path) -> Path:
    """TensorFlow's ONNX converter, ``tf2onnx``, on the same NCHW serving function."""
    import tf2onnx

    serve = _serving_function(model)
    tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=18, output_path=str(path))
    return Path(path)
