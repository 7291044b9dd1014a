"""MXNet's own deployment format for a Gluon ``NiN``: ``HybridBlock.export`` (symbol JSON +
parameters), reloaded with ``gluon.SymbolBlock.imports``.

The export is a directory holding ``model-symbol.json`` and ``model-0000.params``; the symbol
takes the canonical NCHW / NCDHW float32 batch as ``data`` and returns the logits.  It runs
without nin-suite: ``gluon.SymbolBlock.imports(dir/model-symbol.json, ["data"],
dir/model-0000.params)``.

MXNet's ONNX exporter (``mx.onnx.export_model``) imports ``onnx.mapping``, which onnx removed
in 1.16; with the onnx pinned here (1.23) it fails before writing anything, so
``export_onnx`` says so instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from nin.errors import BackendUnavailable
from nin.frameworks import backend_record, export_formats

from .model import NiN

FORMATS = export_formats("mxnet")
PREFIX = "model"


def export_model(model: NiN, path: str | Path, format: str = "gluon") -> Path:
    """Write ``model`` into the directory ``path`` (created) as ``model-symbol.json`` and
    ``model-0000.params`` (``format`` one of ``FORMATS``).  ``nin.export`` calls this on a
    temporary path and renames it into place."""
    if format not in FORMATS:
        raise ValueError(f"the mxnet backend exports {', '.join(FORMATS)}; got {format!r}")
    spec, path = model.spec, Path(path)
    path.mkdir(parents=True)
    ctx = next(iter(model.collect_params().values())).list_ctx()[0]
    model(mx.nd.zeros((1, spec.in_channels, *spec.input_size), ctx=ctx))  # builds the cached graph
    model.export(str(path / PREFIX), epoch=0)
    return path


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    """Reload an export of ``export`` with MXNet alone and run it on an NCHW batch."""
    if format not in FORMATS:
        raise ValueError(f"the mxnet backend exports {', '.join(FORMATS)}; got {format!r}")
    path = Path(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Cannot decide type", UserWarning)  # the input's type comes with the call
        block = gluon.SymbolBlock.imports(
            str(path / f"{PREFIX}-symbol.json"), ["data"], str(path / f"{PREFIX}-0000.params")
        )
    return block(mx.nd.array(np.asarray(x, np.float32))).asnumpy()


def export_onnx(model: NiN, path: str | Path) -> Path:
    """Not available with onnx ≥ 1.16 (see the module docstring)."""
    raise BackendUnavailable(backend_record("mxnet").lacks["onnx_export"])
