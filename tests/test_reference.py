"""The NumPy oracle, tested hard: it is what every backend is held to."""

from __future__ import annotations

import numpy as np
import pytest

import nin
from nin import reference
from nin.spec import AvgPool, MaxPool


def test_conv_hand_computed():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.array([[[[1, 0], [0, -1]]]], dtype=np.float64)  # x[i,j] - x[i+1,j+1] = -5 everywhere
    y, _ = reference.conv_forward(x, w, np.array([2.0]), (1, 1), (0, 0))
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -3.0))
    y, _ = reference.conv_forward(x, w, np.zeros(1), (2, 2), (1, 1))
    # y[i, j] = xp[2i, 2j] - xp[2i+1, 2j+1] with xp[r, c] = x[r-1, c-1] inside, 0 in the padding:
    # y[0, 1] = 0 - x[0, 2] = -2, y[1, 1] = x[1, 1] - x[2, 2] = -5, y[1, 2] = x[1, 3] - 0 = 7, ...
    np.testing.assert_array_equal(y[0, 0], [[0, -2, 0], [-8, -5, 7], [0, 13, 15]])


def test_conv_is_cross_correlation_not_convolution():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 0] = 1.0
    w = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    y, _ = reference.conv_forward(x, w, np.zeros(1), (1, 1), (0, 0))
    assert y.item() == 0.0  # a flipped kernel would give 8


def test_1x1_conv_is_a_per_pixel_matrix_product():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 7))
    w = rng.standard_normal((3, 5, 1, 1))
    b = rng.standard_normal(3)
    y, _ = reference.conv_forward(x, w, b, (1, 1), (0, 0))
    per_pixel = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) + b[:, None, None]
    np.testing.assert_allclose(y, per_pixel, rtol=1e-12)
    # the same as a dense layer applied to every pixel's channel vector
    pixels = x.transpose(0, 2, 3, 1).reshape(-1, 5)
    dense = (pixels @ w[:, :, 0, 0].T + b).reshape(2, 6, 7, 3).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, dense, rtol=1e-12)


def test_conv_matches_direct_loops_3d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 4, 6))
    w = rng.standard_normal((3, 2, 3, 2, 3))
    y, _ = reference.conv_forward(x, w, np.zeros(3), (2, 1, 2), (1, 0, 1))
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (0, 0), (1, 1)])
    want = np.zeros(y.shape)
    for o in range(3):
        for d in range(y.shape[2]):
            for h in range(y.shape[3]):
                for v in range(y.shape[4]):
                    patch = xp[0, :, 2 * d : 2 * d + 3, h : h + 2, 2 * v : 2 * v + 3]
                    want[0, o, d, h, v] = (patch * w[o]).sum()
    np.testing.assert_allclose(y, want, rtol=1e-12)


def _pool(cls, k, s, p, ceil):
    return cls((k, k), (s, s), (p, p), ceil)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 2, 2))
    y, _ = reference.max_pool_forward(x, _pool(MaxPool, 2, 2, 1, False))
    np.testing.assert_array_equal(y, -np.ones((1, 1, 2, 2)))  # zero padding would give 0


def test_max_pool_ceil_mode():
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    y, _ = reference.max_pool_forward(x, _pool(MaxPool, 2, 2, 0, True))
    np.testing.assert_array_equal(y[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    y, _ = reference.max_pool_forward(x, _pool(MaxPool, 2, 2, 0, False))
    np.testing.assert_array_equal(y[0, 0], [[6, 8], [16, 18]])


def test_avg_pool_divisor_counts_padding_but_not_the_ceil_overhang():
    x = np.ones((1, 1, 5, 5))
    # kernel 3, stride 2, padding 1, ceil: out = ceil((5+2-3)/2)+1 = 3
    y, _ = reference.avg_pool_forward(x, _pool(AvgPool, 3, 2, 1, True))
    # row windows start at -1, 1, 3; clipped at n+p = 6: lengths 3, 3, 3; cells inside the
    # input: 2, 3, 2.  So the corner is 4/9, edges 6/9, centre 9/9.
    want = np.outer([2, 3, 2], [2, 3, 2]) / 9.0
    np.testing.assert_allclose(y[0, 0], want, rtol=1e-12)


def test_avg_pool_ceil_window_past_padding_divides_by_fewer_cells():
    x = np.ones((1, 1, 6, 6))
    # kernel 3, stride 2, no padding, ceil: out = ceil(3/2)+1 = 3; the last window starts at 4
    # and covers 4, 5, (6): clipped at n+p = 6, it divides by 2, giving exactly 1.
    y, _ = reference.avg_pool_forward(x, _pool(AvgPool, 3, 2, 0, True))
    np.testing.assert_allclose(y[0, 0], np.ones((3, 3)), rtol=1e-12)
    x = np.arange(36, dtype=np.float64).reshape(1, 1, 6, 6)
    y, _ = reference.avg_pool_forward(x, _pool(AvgPool, 3, 2, 0, True))
    assert y[0, 0, 2, 2] == pytest.approx((28 + 29 + 34 + 35) / 4)


def test_gap_and_head():
    spec = nin.NiNSpec("t", 2, (3, 3), 4, (nin.nin_block(4, 1, mlp=()), nin.GlobalAvgPool()))
    w = {
        "block0.conv0.weight": np.eye(4, 2).reshape(4, 2, 1, 1).astype(np.float32),
        "block0.conv0.bias": np.zeros(4, np.float32),
    }
    x = np.abs(np.random.default_rng(0).standard_normal((1, 2, 3, 3))).astype(np.float32)
    logits, acts = reference.forward(spec, w, x)
    np.testing.assert_allclose(logits[0], [x[0, 0].mean(), x[0, 1].mean(), 0, 0], rtol=1e-6)
    assert list(acts) == ["block0.conv0", "gap"]


def test_head_flattens_channels_first():
    spec = nin.NiNSpec("t", 2, (1, 2), 1, (nin.nin_block(2, 1, mlp=()), nin.Linear(1)))
    w = {
        "block0.conv0.weight": np.eye(2).reshape(2, 2, 1, 1).astype(np.float32),
        "block0.conv0.bias": np.zeros(2, np.float32),
        "head.weight": np.array([[1.0, 10.0, 100.0, 1000.0]], np.float32),
        "head.bias": np.zeros(1, np.float32),
    }
    x = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]], np.float32)  # C=2, H=1, W=2
    logits, _ = reference.forward(spec, w, x)
    assert logits[0, 0] == pytest.approx(1 + 20 + 300 + 4000)  # (c0w0, c0w1, c1w0, c1w1)


def test_forward_names_every_layer_in_order():
    spec = nin.get_spec("nin_tiny")
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    logits, acts = reference.forward(spec, nin.init_weights(spec), x)
    assert list(acts) == [row.name for row in nin.layer_table(spec)]
    for name, shape in nin.output_shapes(spec).items():
        assert acts[name].shape == (2, *shape)
    last_conv = acts["block2.conv2"]  # the last block's output, which the gap averages
    np.testing.assert_allclose(logits, last_conv.sum(axis=(2, 3)) / (last_conv.shape[2] * last_conv.shape[3]))
    np.testing.assert_array_equal(acts["dropout0"], acts["pool1"])  # evaluation mode


def test_dropout_masks_scale_kept_units():
    spec = nin.get_spec("nin_tiny")
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    masks = reference.dropout_masks(spec, x.shape, seed=1)
    _, acts = reference.forward(spec, nin.init_weights(spec), x, masks=masks)
    np.testing.assert_allclose(acts["dropout0"], acts["pool1"] * masks["dropout0"] * 2.0)
    assert 0.3 < masks["dropout0"].mean() < 0.7


def test_reference_rejects_bad_weights():
    spec = nin.get_spec("nin_tiny")
    w = nin.init_weights(spec)
    w.pop("block2.conv2.bias")
    with pytest.raises(nin.WeightsError, match="missing: block2.conv2.bias"):
        reference.forward(spec, w, np.zeros((1, 3, 16, 16), np.float32))


def test_max_pool_gradient_goes_to_the_winner():
    x = np.array([[[[1.0, 5.0], [3.0, 2.0]]]])
    y, cache = reference.max_pool_forward(x, _pool(MaxPool, 2, 2, 0, False))
    dx = reference.max_pool_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 1], [0, 0]])


def test_avg_pool_gradient_is_the_adjoint():
    rng = np.random.default_rng(3)
    pool = AvgPool((3, 3), (2, 2), (1, 1), True)
    x = rng.standard_normal((1, 2, 7, 6))
    y, cache = reference.avg_pool_forward(x, pool)
    dy = rng.standard_normal(y.shape)
    dx = reference.avg_pool_backward(dy, cache)
    assert np.sum(y * dy) == pytest.approx(np.sum(x * dx), rel=1e-12)  # <Ax, dy> = <x, Aᵀdy>


def test_oracle_windows_by_hand():
    """The oracle's own window enumeration (it shares none with nin.shapes)."""
    # n=5, k=3, s=2, p=1: padded [-1, 6); floor: [-1,2) [1,4) [3,6); ceil adds nothing (3 reaches 6)
    assert reference.window_starts(5, 3, 2, 1, ceil_mode=False) == [-1, 1, 3]
    assert reference.window_starts(5, 3, 2, 1, ceil_mode=True) == [-1, 1, 3]
    # n=6: floor [-1,2) [1,4) [3,6); ceil adds [5,8), which starts inside the input and hangs past 7
    assert reference.window_starts(6, 3, 2, 1, ceil_mode=True) == [-1, 1, 3, 5]
    assert [reference.window_divisor(s, 3, 6, 1) for s in (-1, 1, 3, 5)] == [3, 3, 3, 2]
    # n=4, k=2, s=3, p=1: padded [-1, 5); ceil would add a window at 5, in the right padding: dropped
    assert reference.window_starts(4, 2, 3, 1, ceil_mode=True) == [-1, 2]
    assert reference.window_starts(1, 3, 1, 0, ceil_mode=True) == []  # no window fits


def test_oracle_geometry_agrees_with_nin_shapes():
    """Two independent derivations of the pooling rules — the oracle's enumeration and the
    closed forms in nin.shapes that the backends use (``window_out``; ``avg_pool_divisor``;
    ``pool_padding``, with which TensorFlow and JAX pad) — agree on every small case."""
    import itertools

    from nin.shapes import avg_pool_divisor, pool_padding, window_out

    for n, k, s, ceil in itertools.product(range(1, 12), range(1, 6), range(1, 5), (False, True)):
        for p in range(k // 2 + 1):
            case = (n, k, s, p, ceil)
            starts = reference.window_starts(n, k, s, p, ceil)
            assert len(starts) == max(window_out(n, k, s, p, ceil), 0), case
            if starts:
                pool = nin.AvgPool((k,), (s,), (p,), ceil)
                want = avg_pool_divisor((n,), pool)
                assert [reference.window_divisor(t, k, n, p) for t in starts] == list(want), case
                # every window whole: the spec's padding below, above as far as the last window reaches
                assert pool_padding((n,), pool) == ((p, max(p, starts[-1] + k - n)),), case
