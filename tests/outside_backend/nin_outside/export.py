"""No native deployment format: NumPy has none (``nin export --format onnx`` writes the graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nin.errors import BackendUnavailable
from nin.frameworks import backend_record, export_formats

from .model import NiN

FORMATS = export_formats("outside")


def export_model(model: NiN, path: str | Path, format: str) -> Path:
    raise BackendUnavailable(f"the outside backend writes no native format; got {format!r} (use --format onnx)")


def run_exported(path: str | Path, format: str, x: np.ndarray) -> np.ndarray:
    raise BackendUnavailable(f"the outside backend writes no native format; got {format!r} (use --format onnx)")


def export_onnx(model: NiN, path: str | Path) -> Path:
    raise BackendUnavailable(backend_record("outside").lacks["onnx_export"])
