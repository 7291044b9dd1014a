"""The d2l book's own NiN, built with each framework, is the network our ``nin_d2l`` spec
describes: same parameter count, same layer output shapes (d2l §8.3's ``layer_summary``)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import D2L_MISSING, backend_or_skip, selected_backends

import nin


def _book(backend_name: str):
    """``nin.frameworks.<backend>.d2l_book``: a skip where the framework (``backend_or_skip``) or
    the d2l package it imports is absent; any other error of the import, ours or d2l's, fails."""
    backend_or_skip(backend_name)
    try:
        return importlib.import_module(f"nin.frameworks.{backend_name}.d2l_book")
    except ModuleNotFoundError as e:
        if e.name != "d2l":
            raise
        pytest.skip(D2L_MISSING)


def _top_level_names(spec: nin.NiNSpec) -> list[str]:
    """Our name for the output of each of the book's top-level layers (its blocks end in
    their last convolution; its GAP is followed by a Flatten, which we fold into ``gap``)."""
    names = []
    for name, layer in spec.named_layers():
        names.append(f"{name}.conv{len(layer.convs) - 1}" if isinstance(layer, nin.NiNBlock) else name)
    return names


@pytest.mark.parametrize("backend_name", selected_backends())
def test_d2l_book_nin_matches_spec(backend_name):
    book = _book(backend_name)
    spec = nin.get_spec("nin_d2l")
    model = book.build(num_classes=10, in_channels=1, input_size=224)
    assert book.param_count(model) == nin.param_count(spec) == 1_992_166
    outputs = book.layer_outputs(model, np.zeros((1, 1, 224, 224), np.float32))
    ours = nin.output_shapes(spec)
    names = _top_level_names(spec)
    assert len(outputs) == len(names) + 1  # the book's trailing Flatten
    for name, out in zip(names, [*outputs[:-2], outputs[-1]], strict=True):
        got = tuple(out.shape[1:]) if out.ndim != 4 or name != "gap" else (out.shape[1],)
        assert got == ours[name], f"d2l {backend_name} {name}: shape {got} but nin_d2l says {ours[name]}"
