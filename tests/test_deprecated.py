"""The old public names of issue 25's renames, kept for one release: each still gives what the
new name gives, with a ``DeprecationWarning`` that names the new name."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import backend_or_skip

import nin


def _fresh_import(name: str):
    """Import module ``name`` anew (its import-time warning fires once per process)."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize(("old", "new"), [("nin.data", "nin.loaders"), ("nin.trained", "nin.pretrained_weights")])
def test_a_renamed_module_warns_and_holds_the_same_names(old, new):
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .*; use {new}"):
        module = _fresh_import(old)
    renamed = importlib.import_module(new)
    assert module.__all__ and all(getattr(module, name) is getattr(renamed, name) for name in module.__all__)


def test_nin_onnx_load_weights_is_extract_weights(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed: pip install 'nin-suite[onnx]'")
    from nin import onnx as nin_onnx

    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec, seed=3)
    path = nin_onnx.save_model(spec, weights, tmp_path / "tiny.onnx")
    with pytest.warns(DeprecationWarning, match=r"nin\.onnx\.load_weights is deprecated .*nin\.onnx\.extract_weights"):
        old = nin_onnx.load_weights
    assert old is nin_onnx.extract_weights
    for name, value in old(path, spec).items():
        np.testing.assert_array_equal(value, weights[name])


@pytest.mark.parametrize(("backend", "old", "new"), [
    ("tensorflow", "TorchSGD", "CoupledSGD"),
    ("mxnet", "TorchSGD", "CoupledSGD"),
    ("jax", "torch_sgd", "coupled_sgd"),
])  # fmt: skip
def test_the_optimizer_named_after_torch_is_the_coupled_sgd(backend, old, new):
    backend_or_skip(backend)
    train = importlib.import_module(f"nin.frameworks.{backend}.train")
    with pytest.warns(DeprecationWarning, match=f"{train.__name__}.{old} is deprecated .*; use {train.__name__}.{new}"):
        assert getattr(train, old) is getattr(train, new)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        train.no_such_name  # noqa: B018 - the module's __getattr__ answers only its old names


def test_summary_json_flag_is_format_json():
    def nin_summary(*flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "nin.cli", "summary", "nin_tiny", *flags]
        return subprocess.run(command, capture_output=True, text=True, check=True)

    old, new = nin_summary("--json"), nin_summary("--format", "json")
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert json.loads(new.stdout)["total_params"] == nin.param_count(nin.get_spec("nin_tiny"))
    assert "--json is deprecated" in old.stderr and "use --format json" in old.stderr and new.stderr == ""
