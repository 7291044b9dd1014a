"""ONNX (``nin.onnx``, the onnxruntime backend), each framework's own exporters, ``nin export``
and the trained weights that ship (``nin.pretrained``).

Forward and intermediates of onnxruntime on every zoo model are in the conformance suite
(tests/test_conformance.py); here: the graph itself, import, exporters and native formats
(reloaded in one fresh process), and the shipped weights' accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import available_or_skip, backend_or_skip, batch, part_or_skip, required_backends

import nin
from nin import onnx as nin_onnx  # imports the onnx package only when called
from nin import reference
from nin.conformance import FORWARD_RTOL, max_rel_error
from nin.errors import NinError, WeightsError
from nin.frameworks import backend_record, backends_with_part, list_backends


@pytest.fixture(autouse=True)
def onnx_installed() -> None:
    """Every test here needs onnx and onnxruntime, the onnxruntime runtime's requirements: a
    skip naming what is missing, a failure where NIN_REQUIRE_BACKENDS lists onnxruntime."""
    available_or_skip("onnxruntime")


def _random_weights(spec: nin.NiNSpec, seed: int = 3) -> dict[str, np.ndarray]:
    """Seeded weights with non-zero biases, so a dropped or swapped bias shows."""
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(0, 0.05, v.shape)).astype(np.float32) for k, v in nin.init_weights(spec, seed).items()}


def _session(model):
    """An onnxruntime session on the CPU for an ONNX model, a file or an ``onnx.ModelProto``."""
    import onnxruntime as ort

    data = model if isinstance(model, str | Path) else model.SerializeToString()
    return ort.InferenceSession(str(data) if isinstance(data, Path) else data, providers=["CPUExecutionProvider"])


# -- the graph -----------------------------------------------------------------------------


def test_import_nin_does_not_import_onnx():
    code = "import sys, nin, nin.frameworks; nin.list_backends(); print('onnx' in sys.modules or 'onnxruntime' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_graph_is_what_the_docstring_says():
    spec = nin.get_spec("nin_d2l_fc", input_size=nin.min_input_size(nin.get_spec("nin_d2l_fc")))
    model = nin_onnx.to_model(spec, _random_weights(spec), intermediates=True)
    graph = model.graph
    assert {o.domain: o.version for o in model.opset_import}[""] == nin_onnx.OPSET
    assert [i.name for i in graph.initializer] == list(nin.weight_shapes(spec))
    ops = [n.op_type for n in graph.node]
    assert ops.count("Conv") == ops.count("Relu") == sum(len(b.convs) for b in spec.blocks())
    assert ops[-3:] == ["Flatten", "Gemm", "Identity"]
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "N", "the batch dimension must be symbolic"
    assert [o.name for o in graph.output] == ["logits", *nin.output_shapes(spec)]
    assert nin_onnx.param_count(model) == nin.param_count(spec)


def test_param_count_counts_what_the_graph_reads(monkeypatch):
    """The onnxruntime backend's count is the graph's: a convolution whose bias input is cut
    (the initializer still there) computes with 96 values fewer, and the conformance check
    says so against the spec's count; an initializer no node reads is not a parameter."""
    from onnx import numpy_helper

    from nin.checks import check_param_count

    spec = nin.get_spec("nin_d2l")
    model = nin_onnx.to_model(spec, _random_weights(spec))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    del conv.input[2]
    assert nin_onnx.param_count(model) == nin.param_count(spec) - 96
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((7, 7), np.float32), "unused"))
    assert nin_onnx.param_count(model) == nin.param_count(spec) - 96

    adapter = backend_or_skip("onnxruntime")
    to_model = nin_onnx.to_model

    def without_first_bias(*args, **kwargs):
        model = to_model(*args, **kwargs)
        del next(n for n in model.graph.node if n.op_type == "Conv").input[2]
        return model

    monkeypatch.setattr(nin_onnx, "to_model", without_first_bias)
    check = check_param_count(adapter, adapter.build(spec), spec)
    assert not check.ok and check.figure == nin.param_count(spec) - 96, check.message
    assert (
        check.message
        == f"got {nin.param_count(spec) - 96:,} parameters, but should be {nin.param_count(spec):,} (the spec's)"
    )


POOL_EDGES = [
    # ceil mode whose last window would start in the right padding (dropped by the spec's rule)
    # (5 + 2·1 − 3) / 3 rounds up to 3 windows, but the third would start at 6 ≥ 5 + 1: two
    nin.NiNSpec("ceil_pad", 2, (5, 7), 3, (nin.nin_block(4, 3, 1, 1, mlp=(3,)), nin.max_pool(3, 3, 1, ceil_mode=True), nin.GlobalAvgPool())),
    # average pooling with padding and ceil mode: the divisor is the window clipped at input + padding
    nin.NiNSpec("avg_ceil_pad", 2, (8, 7), 3, (nin.nin_block(3, 1, mlp=()), nin.avg_pool(3, 2, 1, ceil_mode=True), nin.nin_block(3, 1, mlp=()), nin.GlobalAvgPool())),
    # rectangular windows, 3-D, a head over (C, D, H, W)
    nin.NiNSpec("rect3d", 1, (5, 6, 7), 4, (nin.nin_block(3, (1, 2, 3), 1, (0, 1, 1), mlp=(2,), ndim=3), nin.avg_pool((2, 3, 2), (1, 2, 2), (1, 1, 0), ceil_mode=True, ndim=3), nin.Dropout(0.5), nin.Linear(4))),
]  # fmt: skip


def test_the_ceil_mode_edge_case_is_one():
    assert nin.output_shapes(POOL_EDGES[0])["pool0"] == (3, 2, 3)


@pytest.mark.parametrize("spec", POOL_EDGES, ids=[s.name for s in POOL_EDGES])
def test_pooling_edge_cases_match_the_oracle(spec):
    weights = _random_weights(spec)
    x = batch(spec, 3, seed=1)
    _, want = reference.forward(spec, weights, x)
    session = _session(nin_onnx.to_model(spec, weights, intermediates=True))
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True))
    for name, ref in want.items():
        assert got[name].shape == ref.shape, f"{spec.name} {name}: shape {got[name].shape}, oracle {ref.shape}"
        assert max_rel_error(got[name], ref) <= FORWARD_RTOL, f"{spec.name} {name}: {max_rel_error(got[name], ref):.1e}"


# -- import --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["nin_d2l_fc", "nin3d", "nin_cifar10"])
def test_canonical_onnx_canonical_is_bit_exact(model, tmp_path):
    spec = nin.get_spec(model)
    weights = _random_weights(spec)
    path = nin_onnx.save_model(spec, weights, tmp_path / "m.onnx")
    back = nin_onnx.extract_weights(path, spec)
    assert list(back) == list(weights)
    assert all(np.array_equal(back[k], weights[k]) for k in weights), "canonical → ONNX → canonical changed a value"


def test_extract_weights_names_the_first_mismatch(tmp_path):
    spec = nin.get_spec("nin_cifar10")
    path = nin_onnx.save_model(spec, _random_weights(spec), tmp_path / "m.onnx")
    smaller = spec.replace(layers=(nin.nin_block(192, 3, 1, 1, mlp=(160, 96)), *spec.layers[1:]))
    with pytest.raises(WeightsError, match=r"node 0 \(Conv .*block0.conv0: kernel \(5, 5\) \(spec: \(3, 3\)\), pads"):
        nin_onnx.extract_weights(path, smaller)
    floor = spec.replace(layers=(spec.layers[0], nin.max_pool(3, 2), *spec.layers[2:]))
    with pytest.raises(WeightsError, match=r"MaxPool .*pool0: ceil_mode True \(spec: False\)"):
        nin_onnx.extract_weights(path, floor)
    with pytest.raises(WeightsError, match="does not match nin_mnist at node 0"):
        nin_onnx.extract_weights(path, nin.get_spec("nin_mnist"))
    with pytest.raises(WeightsError, match="no ONNX file at"):
        nin_onnx.extract_weights(tmp_path / "absent.onnx", spec)
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(WeightsError, match="not a readable ONNX model"):
        nin_onnx.extract_weights(tmp_path / "junk.onnx", spec)


def test_save_model_is_atomic_and_validates_first(tmp_path):
    spec = nin.get_spec("nin_tiny")
    path = nin_onnx.save_model(spec, _random_weights(spec), tmp_path / "m.onnx")
    before = path.read_bytes()
    broken = {**_random_weights(spec), "block0.conv0.bias": np.zeros(3, np.float32)}
    with pytest.raises(WeightsError, match="block0.conv0.bias has shape"):
        nin_onnx.save_model(spec, broken, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


# -- the onnxruntime backend -----------------------------------------------------------------


def test_onnxruntime_backend_is_inference_only():
    from nin.frameworks import backend_trains, list_runtimes
    from nin.train import Recipe, get_trainer

    assert "onnxruntime" in list_runtimes() and "onnxruntime" not in list_backends()
    assert not backend_trains("onnxruntime") and backend_trains("torch")
    adapter = backend_or_skip("onnxruntime")
    spec = nin.get_spec("nin_tiny")
    net = adapter.build(spec, seed=2)
    x = batch(spec, 2)
    with pytest.raises(NinError, match="inference only"):
        adapter.forward(net, x, train=True)
    with pytest.raises(NinError, match="inference only"):
        adapter.loss_and_grads(net, x, np.array([0, 1]))
    with pytest.raises(NinError, match="inference only"):
        get_trainer("onnxruntime", spec, Recipe())


def test_onnxruntime_state_roundtrip_and_other_sizes():
    adapter = backend_or_skip("onnxruntime")
    spec = nin.get_spec("nin_tiny")
    weights = _random_weights(spec)
    net = adapter.build(spec)
    adapter.load_state(net, weights)
    assert all(np.array_equal(adapter.export_state(net)[k], w) for k, w in weights.items())
    bigger = nin.get_spec("nin_tiny", input_size=tuple(s + 5 for s in spec.input_size))
    x = batch(bigger, 2)
    ref_logits, ref_acts = reference.forward(bigger, weights, x)
    acts = adapter.intermediates(net, x)
    assert list(acts) == list(ref_acts)
    assert max(max_rel_error(acts[k], v) for k, v in ref_acts.items()) <= FORWARD_RTOL
    assert max_rel_error(adapter.forward(net, x), ref_logits) <= FORWARD_RTOL
    with pytest.raises(nin.WeightsError, match="missing: block0.conv0.bias"):
        adapter.load_state(net, {k: v for k, v in weights.items() if k != "block0.conv0.bias"})
    with pytest.raises(nin.InputError):
        adapter.forward(net, np.zeros((2, spec.in_channels + 1, *spec.input_size), np.float32))


# -- each framework's own ONNX exporter ---------------------------------------------------------

# small, so that tracing and saving stay quick, with ceil-mode pooling, dropout and a head
# (whose flatten order a channels-last framework must get right)
EXPORTER_SPEC = nin.NiNSpec(
    "small_head", 3, (12, 12), 5,
    (nin.nin_block(8, 3, 1, 1, mlp=(8,)), nin.max_pool(3, 2, ceil_mode=True), nin.Dropout(0.5),
     nin.nin_block(6, 3, mlp=(6,)), nin.Linear(5)),
)  # fmt: skip


@pytest.mark.parametrize("name", backends_with_part("onnx_export"))
def test_framework_onnx_exporter_runs_in_onnxruntime(name, tmp_path):
    """The frameworks' own exporters (torch.onnx.export, tf2onnx) on a model with a head
    (flatten order matters)."""
    adapter = backend_or_skip(name)
    export = part_or_skip(name, "onnx_export")
    weights = _random_weights(EXPORTER_SPEC)
    net = adapter.build(EXPORTER_SPEC)
    adapter.load_state(net, weights)
    path = export.export_onnx(net, tmp_path / f"{name}.onnx")
    x = batch(EXPORTER_SPEC, 3)
    (got,) = _session(path).run(None, {"x": x})
    assert max_rel_error(got, reference.forward(EXPORTER_SPEC, weights, x)[0]) <= FORWARD_RTOL
    if name == "torch":  # its graph is in the canonical op form: nin.onnx imports it exactly
        back = nin_onnx.extract_weights(path, EXPORTER_SPEC)
        assert all(np.array_equal(back[k], w) for k, w in weights.items())


@pytest.mark.parametrize("name", [b for b in list_backends() if b not in backends_with_part("onnx_export")])
def test_missing_onnx_exporters_say_why(name, tmp_path):
    """A backend whose record lacks the part still defines the contract's ``export_onnx``, which
    refuses with the record's reason."""
    adapter = backend_or_skip(name)
    with pytest.raises(nin.BackendUnavailable, match="nin export MODEL --format onnx") as refused:
        adapter.export_onnx(None, tmp_path / "m.onnx")
    assert str(refused.value) == backend_record(name).lacks["onnx_export"]
    assert not (tmp_path / "m.onnx").exists()


# -- native formats: nin export, reloaded in one fresh process --------------------------------

_RELOAD = """
import json, sys
import numpy as np
from nin.export import run_exported
cases = json.loads(sys.argv[1])
x = np.load(sys.argv[2])
np.savez(sys.argv[3], **{fmt: run_exported(path, fmt, x) for fmt, path in cases.items()})
"""


def test_native_formats_reload_in_a_fresh_process(tmp_path):
    """Every format ``nin export`` writes, for every installed backend, on a model with a head;
    one subprocess reloads them all with the frameworks' own loaders (no nin-suite model code)."""
    from nin.export import export, formats
    from nin.frameworks import unavailable_reason

    spec, weights = EXPORTER_SPEC, _random_weights(EXPORTER_SPEC)
    cases = {}
    for fmt, owner in formats().items():
        if reason := unavailable_reason(owner or "onnxruntime"):
            assert (owner or "onnxruntime") not in required_backends(), f"format {fmt}: {reason}"
            continue
        out = export(spec, weights, fmt, tmp_path / f"model.{fmt}")
        assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name], "a temporary file was left behind"
        cases[fmt] = str(out)
    assert "onnx" in cases
    x = batch(spec, 3, seed=4)
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", _RELOAD, json.dumps(cases), str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    want = reference.forward(spec, weights, x)[0]
    with np.load(tmp_path / "out.npz") as got:
        assert sorted(got.files) == sorted(cases)
        for fmt in cases:
            err = max_rel_error(got[fmt], want)
            assert got[fmt].shape == want.shape and err <= FORWARD_RTOL, f"{fmt}: max|Δ| {err:.1e}·max|ref|"


def _cli(*argv: str) -> int:
    """``nin ARGV`` in-process: its exit status, from argparse's own errors too."""
    from nin.cli import main

    try:
        return main(list(argv))
    except SystemExit as e:
        return e.code


def test_nin_export_cli(tmp_path, capsys):
    spec = nin.get_spec("nin_cifar10")
    weights = nin.save_weights(_random_weights(spec), tmp_path / "W.npz")
    assert (
        _cli("export", "nin_cifar10", "--weights", str(weights), "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
        == 0
    )
    printed = capsys.readouterr().out
    err = float(printed.split("oracle| = ")[1].split(" ")[0])
    assert err <= 1e-5, printed
    assert (
        _cli(
            "export",
            "nin_cifar10",
            "--weights",
            str(weights),
            "--format",
            "savedmodel",
            "--backend",
            "torch",
            "--out",
            str(tmp_path / "x"),
        )
        == 2
    )
    assert "the torch backend does not write savedmodel" in capsys.readouterr().err
    assert _cli("export", "nin_cifar10", "--format", "onnx", "--out", str(tmp_path / "y.onnx")) == 2
    assert "no trained weights ship for nin_cifar10: pass --weights FILE" in capsys.readouterr().err
    assert _cli("export", "nin_cifar10", "--weights", str(weights), "--format", "onnx", "--out", str(tmp_path)) == 2
    assert "it is an existing folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y.onnx").exists()  # fmt: skip


# -- trained weights that ship ---------------------------------------------------------------


def test_pretrained_mnist_reaches_its_stated_accuracy():
    """The shipped nin_mnist on mnist5k's test split, run by onnxruntime (or the NumPy oracle
    where onnxruntime is missing), against the accuracy the manifest states.  A float32
    rounding difference between runtimes can flip a near-tie prediction, so at most one test
    digit may differ from the count of the training run."""
    from nin.loaders import load_dataset
    from nin.pretrained_weights import pretrained_info

    info = pretrained_info("nin_mnist")
    weights = nin.pretrained("nin_mnist")
    data = load_dataset("mnist5k")
    spec = nin.get_spec("nin_mnist")
    from nin.frameworks import available_runtimes

    if "onnxruntime" in available_runtimes():
        logits = _session(nin_onnx.to_model(spec, weights)).run(None, {"x": data.x_test})[0]
    else:
        logits = reference.forward(spec, weights, data.x_test)[0]
    accuracy = float(np.mean(logits.argmax(axis=1) == data.y_test))
    assert abs(accuracy - info["test_accuracy"]) <= 1 / len(data.y_test), (
        f"{accuracy} vs stated {info['test_accuracy']}"
    )
    assert info["test_accuracy"] >= 0.975


def test_pretrained_files_check_their_sha256(tmp_path, monkeypatch):
    from nin import pretrained_weights as trained

    manifest = json.loads((trained._folder() / "manifest.json").read_text())
    assert set(manifest) == {"nin_mnist", "nin3d"}
    total = 0
    for name, info in manifest.items():
        data = (trained._folder() / info["file"]).read_bytes()
        total += len(data)
        (tmp_path / info["file"]).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        assert nin.validate_weights(nin.get_spec(name), nin.pretrained(name))
    assert total <= 1_000_000, f"shipped weights take {total:,} bytes; the budget is 1 MB"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(trained, "_folder", lambda: tmp_path)
    with pytest.raises(WeightsError, match="has sha256 .* but the manifest says"):
        nin.pretrained("nin_mnist")
    with pytest.raises(nin.UnknownNameError, match="models with trained weights: nin_mnist, nin3d"):
        nin.pretrained("nin_cifar10")


def test_visualize_uses_the_pretrained_weights(tmp_path, capsys):
    assert _cli("visualize", "--model", "nin_mnist", "--sample", "7", "--out", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "numpy backend · pretrained weights: nin_mnist.safetensors" in printed
    assert "prediction: " in printed
