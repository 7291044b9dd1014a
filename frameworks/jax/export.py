"""JAX's own deployment format for a Flax ``NiN``: ``jax.export`` serialized StableHLO.

The exported function takes the canonical NCHW / NCDHW float32 batch with a symbolic batch
dimension and returns the logits; the parameters are constants inside the module.  The file
runs without nin-suite or Flax: ``jax.export.deserialize(open(path, "rb").read()).call(x)``.
JAX has no ONNX exporter of its own (``jax2tf`` + ``tf2onnx`` would go through TensorFlow, whose
own exporter is checked already), so ``export_onnx`` says so.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from nin.errors import BackendUnavailable
from nin.frameworks import backend_record, export_formats

from .adapter import FlaxNiN, apply_logits

FORMATS = export_formats("jax")


def export_model(model: FlaxNiN, path: str | Path, format: str = "stablehlo") -> Path:
    """Write ``model``'s evaluation-mode forward pass to ``path`` as serialized StableHLO
    (``format`` one of ``FORMATS``), for the CPU.  ``nin.export`` calls this on a temporary
    path and renames it into place."""
    if format not in FORMATS:
        raise ValueError(f"the jax backend exports {', '.join(FORMATS)}; got {format!r}")
    spec, params = model.spec, jax.device_get(model.params)
    (batch,) = jax_export.symbolic_shape("N")

    def serve(x):
        return apply_logits(model.module, params, x, None, train=False)

    exported = jax_export.export(jax.jit(serve), platforms=["cpu"])(
        jax.ShapeDtypeStruct((batch, spec.in_channels, *spec.input_size), jnp.float32)
    )
    Path(path).write_bytes(exported.serialize())
    return Path(path)


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    """Deserialize a file written by ``export`` with JAX alone and call it on an NCHW batch."""
    if format not in FORMATS:
        raise ValueError(f"the jax backend exports {', '.join(FORMATS)}; got {format!r}")
    exported = jax_export.deserialize(bytearray(Path(path).read_bytes()))
    return np.asarray(exported.call(jnp.asarray(x, jnp.float32)))


def export_onnx(model: FlaxNiN, path: str | Path) -> Path:
    """Not available: JAX has no ONNX exporter (see the module docstring)."""
    raise BackendUnavailable(backend_record("jax").lacks["onnx_export"])
