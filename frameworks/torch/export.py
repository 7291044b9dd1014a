"""PyTorch's own deployment formats for a ``NiN``: TorchScript (``torch.jit.trace``), and
``torch.onnx.export`` as a cross-check of ``nin.onnx``.

A file written here runs without nin-suite: ``torch.jit.load(path)(x)`` with an NCHW float32
batch of any size gives the logits.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch

from nin.frameworks import export_formats

from .model import NiN

FORMATS = export_formats("torch")


def _cpu_copy(model: NiN) -> tuple[NiN, torch.Tensor]:
    """A float32 CPU copy of ``model`` in evaluation mode (the caller's model is left as it
    is) and an example batch for tracing."""
    spec = model.spec
    return copy.deepcopy(model).float().cpu().eval(), torch.zeros(2, spec.in_channels, *spec.input_size)


def export_model(model: NiN, path: str | Path, format: str = "torchscript") -> Path:
    """Write ``model`` to ``path`` in ``format`` (one of ``FORMATS``): a TorchScript archive
    traced in evaluation mode, float32, on the CPU.  ``nin.export`` calls this on a temporary
    path and renames it into place."""
    if format not in FORMATS:
        raise ValueError(f"the torch backend exports {', '.join(FORMATS)}; got {format!r}")
    model, example = _cpu_copy(model)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    traced.save(str(path))
    return Path(path)


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    """Reload a file written by ``export`` with PyTorch alone and run it on an NCHW batch."""
    if format not in FORMATS:
        raise ValueError(f"the torch backend exports {', '.join(FORMATS)}; got {format!r}")
    module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def export_onnx(model: NiN, path: str | Path) -> Path:
    """PyTorch's own ONNX exporter (the TorchScript-based one: the newer ``dynamo=True``
    exporter needs the ``onnxscript`` package), with a dynamic batch dimension."""
    model, example = _cpu_copy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter says it is legacy
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
            opset_version=18,
        )
    return Path(path)
