"""A backend from outside nin-suite: its own distribution (``nin-outside``), registered through
the ``nin.backends`` entry-point group, with the NumPy oracle (``nin.reference``) as its engine.

The tests put this folder on ``PYTHONPATH`` of a subprocess (tests/test_registry.py): its
``nin_outside-0.1.dist-info/entry_points.txt`` is what ``pip install`` of a distribution with
``[project.entry-points."nin.backends"] outside = "nin_outside"`` writes, so the registry finds
it the way it finds any installed backend.  frameworks/README.md ("A backend from outside")
walks through it.
"""

from __future__ import annotations

from typing import Any

from nin.frameworks.record import CONTRACT, BackendRecord, contract_attribute

RECORD = BackendRecord(
    name="outside",
    requires=(),  # NumPy only, which nin-suite has
    extra="",
    lacks={
        "d2l_book": "the d2l book has no NumPy NiN",
        "distributed": "the NumPy oracle trains in one process",
        "onnx_export": "NumPy has no ONNX exporter; write the graph with nin.onnx (nin export MODEL --format onnx)",
    },
)

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
