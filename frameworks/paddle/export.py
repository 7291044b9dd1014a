"""Paddle's own deployment format for a ``NiN``: ``paddle.jit.save`` (the dynamic-graph model
traced into a static program), reloaded with ``paddle.jit.load``.

The export is a directory holding ``model.json`` (the program, in Paddle 3's PIR form) and
``model.pdiparams`` (the weights); the program takes the canonical NCHW / NCDHW float32 batch,
any batch size, as ``x`` and returns the logits.  It runs without nin-suite:
``paddle.jit.load("dir/model")(paddle.to_tensor(x))``, or through Paddle Inference.

Paddle's ONNX exporter is a separate package, paddle2onnx, which this suite does not install
(the record's ``lacks``), so ``export_onnx`` says so; ``nin export --format onnx`` writes the
graph from the canonical weights with ``nin.onnx``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import paddle
from paddle.static import InputSpec

from nin.errors import BackendUnavailable
from nin.frameworks import backend_record, export_formats

from .model import NiN

FORMATS = export_formats("paddle")
PREFIX = "model"


def export_model(model: NiN, path: str | Path, format: str = "paddle_jit") -> Path:
    """Write ``model`` into the directory ``path`` (created) as ``model.json`` and
    ``model.pdiparams`` (``format`` one of ``FORMATS``), traced in evaluation mode from a copy
    (``paddle.jit.save`` turns the layer it is given into a static one).  ``nin.export``
    calls this on a temporary path and renames it into place."""
    if format not in FORMATS:
        raise ValueError(f"the paddle backend exports {', '.join(FORMATS)}; got {format!r}")
    spec, path = model.spec, Path(path)
    path.mkdir(parents=True)
    serving = copy.deepcopy(model)
    serving.eval()
    batch = InputSpec([None, spec.in_channels, *spec.input_size], "float32", name="x")
    paddle.jit.save(serving, str(path / PREFIX), input_spec=[batch])
    return path


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    """Reload an export of ``export_model`` with Paddle alone and run it on an NCHW batch."""
    if format not in FORMATS:
        raise ValueError(f"the paddle backend exports {', '.join(FORMATS)}; got {format!r}")
    program = paddle.jit.load(str(Path(path) / PREFIX))
    program.eval()
    with paddle.no_grad():
        return program(paddle.to_tensor(np.ascontiguousarray(x, np.float32))).numpy()


def export_onnx(model: NiN, path: str | Path) -> Path:
    """Not available: paddle2onnx is not installed (see the module docstring)."""
    raise BackendUnavailable(backend_record("paddle").lacks["onnx_export"])
