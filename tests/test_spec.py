"""The framework-free spec: zoo figures, shapes, MACs, validation and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import nin
from nin.shapes import window_out
from nin.spec import Conv, NiNBlock

# Figures from the sources each config cites (counted by hand in the docstrings' terms).
PARAMS = {"nin_d2l": 1_992_166, "nin_cifar10": 966_986, "nin_imagenet": 7_595_176}


@pytest.mark.parametrize("model, params", PARAMS.items())
def test_zoo_parameter_counts_match_the_sources(model, params):
    assert nin.param_count(nin.get_spec(model)) == params


def test_nin_d2l_macs():
    # d2l's NiN at 1×224×224: 762.3 M multiply-accumulates per image
    assert round(nin.mac_count(nin.get_spec("nin_d2l")) / 1e5) == 7623


def test_every_zoo_model_has_a_source_and_valid_shapes():
    for name in nin.list_models():
        spec = nin.get_spec(name)
        assert spec.name == name and spec.source
        table = nin.layer_table(spec)
        assert table[-1].output_shape == (spec.num_classes,)
        assert nin.param_count(spec) == sum(int(np.prod(s)) for s in nin.weight_shapes(spec).values())


def test_nin_tiny_is_tiny_and_covers_every_pooling_rule():
    spec = nin.get_spec("nin_tiny")
    assert 1000 < nin.param_count(spec) < 10_000
    pools = [layer for layer in spec.layers if isinstance(layer, nin.MaxPool | nin.AvgPool)]
    assert any(isinstance(p, nin.MaxPool) and p.ceil_mode for p in pools)
    assert any(isinstance(p, nin.AvgPool) and p.ceil_mode and max(p.padding) > 0 for p in pools)


def test_caffe_cifar10_shapes_round_up():
    shapes = nin.output_shapes(nin.get_spec("nin_cifar10"))
    # Caffe: 32 -> max-pool 3/2 rounds up to 16 (floor would give 15) -> avg-pool 3/2 to 8
    assert shapes["pool0"] == (96, 16, 16)
    assert shapes["pool1"] == (192, 8, 8)
    assert shapes["gap"] == (10,)


def test_imagenet_shapes():
    shapes = nin.output_shapes(nin.get_spec("nin_imagenet"))
    assert shapes["block0.conv0"] == (96, 54, 54)
    assert shapes["pool0"] == (96, 27, 27)  # ceil((54-3)/2)+1 = 27; floor mode would give 26
    assert shapes["pool2"] == (384, 6, 6)
    assert shapes["block3.conv2"] == (1000, 6, 6)


def test_overrides():
    spec = nin.get_spec("nin_d2l", num_classes=7, in_channels=3, input_size=96)
    assert (spec.num_classes, spec.in_channels, spec.input_size) == (7, 3, (96, 96))
    assert nin.output_shapes(spec)["gap"] == (7,)
    assert nin.get_spec("nin3d", input_size=16).input_size == (16, 16, 16)


@pytest.mark.parametrize(
    "n, k, s, p, ceil, want",
    [
        (5, 3, 2, 0, False, 2),
        (6, 3, 2, 0, False, 2),
        (6, 3, 2, 0, True, 3),  # ceil((6-3)/2)+1 = 3
        (5, 2, 2, 1, True, 3),  # ceil(5/2)+1 = 4, but the 4th window starts at 6 >= 5+1: dropped
        (4, 3, 3, 1, True, 2),
        (2, 3, 2, 0, False, 0),
        (1, 1, 1, 0, False, 1),
    ],
)
def test_window_out(n, k, s, p, ceil, want):
    assert window_out(n, k, s, p, ceil) == want


def test_volumetric_shapes():
    spec = nin.get_spec("nin3d")
    assert spec.ndim == 3
    shapes = nin.output_shapes(spec)
    assert shapes["block0.conv0"] == (16, 32, 32, 32)
    assert shapes["pool1"] == (32, 8, 8, 8)
    assert nin.weight_shapes(spec)["block0.conv0.weight"] == (16, 1, 3, 3, 3)


def test_min_input_size():
    assert nin.min_input_size(nin.get_spec("nin_d2l")) == (67, 67)
    spec = nin.get_spec("nin_d2l", input_size=67)
    assert nin.output_shapes(spec)["pool2"] == (384, 1, 1)


def test_too_small_input_names_layer_and_minimum():
    spec = nin.get_spec("nin_d2l")
    with pytest.raises(nin.InputError) as err:
        nin.check_input(spec, np.zeros((1, 1, 66, 66), np.float32))
    msg = str(err.value)
    assert "nin_d2l needs input ≥ 67×67" in msg and "pool2" in msg and "got 66×66" in msg


@pytest.mark.parametrize(
    "x, words",
    [
        (np.zeros((1, 3, 16, 16), np.float32), ["1 channel", "(1, 3, 16, 16)"]),
        (np.zeros((1, 224, 224), np.float32), ["(N, C, H, W)", "x[None]"]),
        (np.zeros((2, 224, 224, 1), np.float32), ["channels-last", "transpose(0, 3, 1, 2)"]),
        (np.zeros((1, 1, 224, 224), np.int64), ["int64", "astype"]),
        (np.full((1, 1, 224, 224), np.nan, np.float32), ["NaN"]),
        ([[1.0]], ["NumPy array", "list"]),
    ],
)
def test_bad_input_messages(x, words):
    with pytest.raises(nin.InputError) as err:
        nin.check_input(nin.get_spec("nin_d2l"), x)
    for word in words:
        assert word in str(err.value)


def test_other_input_sizes_are_accepted_without_a_head():
    spec = nin.get_spec("nin_cifar10")
    x = nin.check_input(spec, np.zeros((2, 3, 40, 40)))
    assert x.dtype == np.float32
    with pytest.raises(nin.InputError, match="fully connected head"):
        nin.check_input(nin.get_spec("nin_d2l_fc"), np.zeros((1, 1, 100, 100), np.float32))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: nin.get_spec("nin_d2l", input_size=(10, 10)), ["impossible", "67×67"]),
        (lambda: nin.nin_block(0, 3), ["positive"]),
        (lambda: nin.nin_block(8, 3, stride=0), ["stride"]),
        (lambda: nin.get_spec("nin_tiny", num_classes=0), ["nin_tiny", "num_classes", "got 0"]),
        (lambda: nin.get_spec("nin_tiny", input_size=(16, -1)), ["input_size", "(16, -1)"]),
        (lambda: nin.get_spec("nin_tiny", input_size=(16, 16, 16)), ["block0.conv0", "2-D", "3-D"]),
        (lambda: nin.max_pool(2, 2, padding=2), ["padding"]),
        (lambda: nin.NiNSpec("x", 1, (8, 8), 4, (nin.nin_block(5, 3), nin.GlobalAvgPool())), ["num_classes=4", "5"]),
        (lambda: nin.NiNSpec("x", 1, (8, 8), 4, (nin.GlobalAvgPool(), nin.nin_block(4, 3))), ["last layer"]),
        (
            lambda: nin.NiNSpec(
                "x", 1, (8, 8), 4, (NiNBlock((Conv(4, (3, 3, 3), (1, 1, 1), (0, 0, 0)),)), nin.GlobalAvgPool())
            ),
            ["3-D", "2-D"],
        ),
        (lambda: nin.Dropout(1.5), ["dropout rate"]),
    ],
)
def test_impossible_configs(make, words):
    with pytest.raises(nin.SpecError) as err:
        made = make()
        nin.layer_table(made)
    for word in words:
        assert word in str(err.value)


def test_unknown_model_lists_known_ones():
    with pytest.raises(nin.UnknownNameError) as err:
        nin.get_spec("nin_resnet")
    assert "nin_resnet" in str(err.value) and "nin_cifar10" in str(err.value)


def test_specs_are_frozen_and_hashable():
    spec = nin.get_spec("nin_tiny")
    assert hash(spec) == hash(nin.get_spec("nin_tiny"))
    with pytest.raises(AttributeError):
        spec.num_classes = 3  # type: ignore[misc]


def test_import_nin_imports_no_framework():
    from nin.frameworks import framework_modules

    code = (
        "import sys, nin; nin.get_spec('nin_d2l'); nin.list_backends(); nin.available_backends();"
        f"bad = [m for m in {framework_modules()!r} if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_registry():
    from nin.frameworks import list_runtimes

    assert set(nin.available_backends()) <= set(nin.list_backends()) <= set(list_runtimes())
    with pytest.raises(nin.UnknownNameError, match=f"known backends: {', '.join(list_runtimes())}$"):
        nin.get_backend("caffe")


@pytest.mark.parametrize("name", nin.list_backends())
def test_missing_framework_names_the_extra(name, monkeypatch):
    from nin import frameworks

    extra = frameworks.backend_record(name).extra
    monkeypatch.setattr(frameworks, "missing_modules", lambda b: ["surely_not_installed_module"] if b == name else [])
    assert name not in nin.available_backends()
    with pytest.raises(nin.BackendUnavailable, match=rf"pip install 'nin-suite\[{extra}\]'"):
        nin.get_backend(name)


def _nin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nin.cli", *args], capture_output=True, text=True)


def test_cli_summary_json():
    out = _nin("summary", "nin_d2l", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["total_params"] == 1_992_166
    assert data["total_macs"] == nin.mac_count(nin.get_spec("nin_d2l"))
    assert {"name", "kind", "output_shape", "params", "macs"} <= set(data["layers"][0])
    assert data["layers"][-1]["output_shape"] == [10]


def test_cli_summary_text_and_overrides():
    out = _nin("summary", "nin_cifar10", "--input-size", "64", "64", "--num-classes", "100")
    assert out.returncode == 0, out.stderr
    assert "nin_cifar10: input 3×64×64, 100 classes" in out.stdout
    assert "total" in out.stdout


def test_cli_errors_are_one_line():
    out = _nin("summary", "nin_d2l", "--input-size", "66", "66")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "67×67" in out.stderr
    out = _nin("summary", "nope")
    assert out.returncode == 2 and "known models" in out.stderr


@pytest.mark.parametrize(
    "labels, words",
    [
        (np.array([0.0, 1.0]), ["integer"]),
        (np.array([[0, 1]]), ["shape (2,)"]),
        (np.array([0, 10]), ["[0, 10)", "to 10"]),
        (np.array([-1, 2]), ["from -1"]),
    ],
)
def test_bad_labels(labels, words):
    with pytest.raises(nin.InputError) as err:
        nin.check_labels(nin.get_spec("nin_tiny"), labels, 2)
    for word in words:
        assert word in str(err.value)


def test_pool_padding_and_divisor():
    pool = nin.avg_pool(3, 2, 1, ceil_mode=True)
    assert nin.shapes.pool_padding((5, 6), pool) == ((1, 1), (1, 2))  # 6: 4 windows, the last at 5..7
    assert nin.shapes.pool_padding((6, 6), nin.max_pool(3, 2, ceil_mode=True)) == ((0, 1), (0, 1))
    # rows of a 5-long input: windows start at -1, 1, 3 and are clipped at 5 + 1 = 6
    np.testing.assert_array_equal(nin.shapes.avg_pool_divisor((5, 5), pool), np.full((3, 3), 9.0))
    np.testing.assert_array_equal(
        nin.shapes.avg_pool_divisor((6, 1), nin.avg_pool((3, 1), (2, 1), ceil_mode=True)), [[3], [3], [2]]
    )
