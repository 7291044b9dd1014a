"""Canonical weights: names, seeded initialisers, save/load and validation."""

from __future__ import annotations

import numpy as np
import pytest

import nin


def test_names_and_layouts():
    spec = nin.get_spec("nin_d2l")
    shapes = nin.weight_shapes(spec)
    assert list(shapes)[:4] == ["block0.conv0.weight", "block0.conv0.bias", "block0.conv1.weight", "block0.conv1.bias"]
    assert shapes["block0.conv0.weight"] == (96, 1, 11, 11)
    assert shapes["block1.conv0.weight"] == (256, 96, 5, 5)
    assert shapes["block3.conv2.weight"] == (10, 10, 1, 1)
    fc = nin.weight_shapes(nin.get_spec("nin_d2l_fc"))
    assert fc["head.weight"] == (10, 384 * 5 * 5) and fc["head.bias"] == (10,)


@pytest.mark.parametrize("method", nin.weights.INITIALIZERS)
def test_initialisers_are_seeded_and_scaled(method):
    spec = nin.get_spec("nin_cifar10")
    a, b, c = (nin.init_weights(spec, s, method) for s in (0, 0, 1))
    for name in a:
        assert a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["block0.conv0.weight"], c["block0.conv0.weight"])
    w = a["block1.conv0.weight"]  # fan_in 96·25 = 2400, fan_out 192·25 = 4800
    want_std = {"xavier": np.sqrt(2 / 7200), "gaussian": 0.05}.get(method, np.sqrt(2 / 2400))  # He for the rest
    assert w.std() == pytest.approx(want_std, rel=0.05)
    assert not a["block1.conv0.bias"].any()


def test_centered_is_kaiming_with_zero_sum_filters():
    spec = nin.get_spec("nin_cifar10")
    he, centered = nin.init_weights(spec, 3, "kaiming"), nin.init_weights(spec, 3, "centered")
    for name, w in centered.items():
        if name.endswith(".bias"):
            assert not w.any()
            continue
        per_output = w.reshape(w.shape[0], -1)
        np.testing.assert_allclose(per_output.sum(axis=1), 0, atol=1e-5 * np.abs(per_output).sum(axis=1).max())
        shift = (he[name] - w).reshape(w.shape[0], -1)  # the same draws, each output shifted by a constant
        np.testing.assert_allclose(shift, shift[:, :1].repeat(shift.shape[1], axis=1), atol=1e-6)


def _dead_class_seeds(method: str, x: np.ndarray) -> list[int]:
    """Seeds of ``nin_mnist`` (dropout off) whose initial weights leave some class logit at
    exactly zero for every one of the digits ``x``: a class map that never switches on."""
    from nin import reference
    from nin.train import Recipe, spec_for

    spec = spec_for(Recipe(), nin.get_spec("nin_mnist"))
    dead = []
    for seed in range(16):
        logits, _ = reference.forward(spec, nin.init_weights(spec, seed, method), x)
        if (logits <= 0).all(axis=0).any():
            dead.append(seed)
    return dead


def test_centered_init_starts_every_class_map_alive():
    """The reason the training recipe uses ``centered``: with He init several seeds start with
    a class channel that is zero on every digit (measured on 500 digits: 5 of 16 seeds; Xavier
    8 of 16), and that class is never learned; centred filters start them all active."""
    from nin.loaders import load_mnist5k

    x = load_mnist5k().x_test[::25]  # 40 digits, every class
    assert len(_dead_class_seeds("kaiming", x)) >= 3
    assert _dead_class_seeds("centered", x) == []


def test_unknown_initialiser():
    with pytest.raises(nin.UnknownNameError, match="xavier, gaussian, kaiming"):
        nin.init_weights(nin.get_spec("nin_tiny"), method="orthogonal")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_load_roundtrip(tmp_path, suffix):
    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec, 4, "kaiming")
    path = nin.save_weights(weights, tmp_path / f"w{suffix}")
    assert not list(tmp_path.glob("*.tmp"))
    loaded = nin.load_weights(path, spec)
    assert list(loaded) == list(weights)
    for name in weights:
        np.testing.assert_array_equal(loaded[name], weights[name])


def test_validation_names_every_problem():
    spec = nin.get_spec("nin_tiny")
    w = nin.init_weights(spec)
    w.pop("block0.conv0.bias")
    w["extra.weight"] = np.zeros(3, np.float32)
    w["block1.conv1.weight"] = np.zeros((12, 12, 3, 3), np.float32)
    w["block2.conv0.bias"] = w["block2.conv0.bias"].astype(np.int32)
    with pytest.raises(nin.WeightsError) as err:
        nin.validate_weights(spec, w)
    msg = str(err.value)
    assert "missing: block0.conv0.bias" in msg
    assert "unexpected: extra.weight" in msg
    assert "block1.conv1.weight has shape (12, 12, 3, 3) but nin_tiny needs (12, 12, 1, 1)" in msg
    assert "block2.conv0.bias has dtype int32" in msg


def test_validation_casts_float64_to_float32():
    spec = nin.get_spec("nin_tiny")
    w = {k: v.astype(np.float64) for k, v in nin.init_weights(spec).items()}
    assert all(v.dtype == np.float32 for v in nin.validate_weights(spec, w).values())


def test_loading_bad_files(tmp_path):
    with pytest.raises(nin.WeightsError, match="no weights file"):
        nin.load_weights(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(nin.WeightsError, match="bad.npz is not a readable .npz weights file"):
        nin.load_weights(bad)
    with pytest.raises(nin.UnknownNameError, match=".npz or .safetensors"):
        nin.save_weights({}, tmp_path / "w.pt")


def test_head_only_spec_flattens_the_input():
    spec = nin.NiNSpec("flat", 2, (3, 3), 4, (nin.Linear(4),))
    assert nin.weight_shapes(spec)["head.weight"] == (4, 2 * 3 * 3)
    assert nin.param_count(spec) == 4 * 18 + 4


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_truncated_file_is_refused_naming_the_file(tmp_path, suffix):
    """Cut anywhere — in the header, in a tensor, one byte short of the end: a WeightsError
    naming the file, whatever the parser underneath raised (zipfile, zlib, NumPy's header
    parser, safetensors), never weights."""
    spec = nin.get_spec("nin_tiny")
    whole = nin.save_weights(nin.init_weights(spec), tmp_path / f"whole{suffix}").read_bytes()
    broken = tmp_path / f"broken{suffix}"
    for cut in [*range(0, len(whole), max(1, len(whole) // 200)), *range(len(whole) - 64, len(whole))]:
        broken.write_bytes(whole[:cut])
        with pytest.raises(nin.WeightsError, match="not a readable") as err:
            nin.load_weights(broken, spec)
        assert str(broken) in str(err.value), f"cut at {cut} of {len(whole)} bytes: {err.value}"


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_damaged_file_is_refused_or_reads_the_saved_weights(tmp_path, suffix):
    """Eight bytes overwritten anywhere in the file (at 150 offsets, two patterns): either a
    WeightsError naming the file, or exactly the weights that were saved — never other values.
    An .npz is guarded by its zip's CRC-32, a .safetensors by the sha256 ``save_weights`` writes
    into its metadata; some damage (a zip's local header, which readers skip) changes nothing."""
    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec, 1, "kaiming")
    whole = nin.save_weights(weights, tmp_path / f"whole{suffix}").read_bytes()
    broken = tmp_path / f"broken{suffix}"
    refused, offsets = 0, range(0, len(whole) - 8, len(whole) // 150)
    for pattern in (b"\x00" * 8, b"?" * 8):  # 0x3f3f3f3f is a finite float32 (0.75)
        for at in offsets:
            broken.write_bytes(whole[:at] + pattern + whole[at + 8 :])
            try:
                loaded = nin.load_weights(broken, spec)
            except nin.WeightsError as e:
                assert str(broken) in str(e), e
                refused += 1
                continue
            changed = [name for name in weights if not np.array_equal(loaded[name], weights[name])]
            assert not changed, f"{pattern[:1]!r}×8 at byte {at} of {len(whole)}: loaded other values in {changed}"
    assert refused > len(offsets), f"only {refused} of {2 * len(offsets)} damaged files refused"


def test_safetensors_from_elsewhere_without_a_digest_still_load(tmp_path):
    from safetensors.numpy import save_file

    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec, 2, "kaiming")
    save_file(weights, str(tmp_path / "plain.safetensors"))
    loaded = nin.load_weights(tmp_path / "plain.safetensors", spec)
    assert all(np.array_equal(loaded[name], w) for name, w in weights.items())


def test_non_finite_weights_are_rejected_naming_the_tensor(tmp_path):
    spec = nin.get_spec("nin_tiny")
    weights = nin.init_weights(spec)
    weights["block0.conv1.bias"][1] = np.inf
    weights["block2.conv0.weight"].flat[3] = np.nan
    with pytest.raises(nin.WeightsError, match=r"block0\.conv1\.bias has 0 NaN and 1 inf") as err:
        nin.validate_weights(spec, weights)
    assert "block2.conv0.weight has 1 NaN and 0 inf" in str(err.value)
    path = nin.save_weights(weights, tmp_path / "bad.safetensors")
    with pytest.raises(nin.WeightsError, match="block0.conv1.bias"):
        nin.load_weights(path, spec)
