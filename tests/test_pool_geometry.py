"""A deterministic sweep of pooling geometry, for every runtime (onnxruntime included): max and
average pooling, floor and ceil mode, windows hanging past input + padding and windows the
ceil rule drops, windows wider than the input, strides above the kernel (gaps), anisotropic
kernel, stride and padding, 2-D and 3-D — each pool's output and the logits against the
oracle, and, for the runtimes that train, the gradients.

``GEOMETRIES`` is the list: every (kernel, stride, padding) with kernel 1–5, stride 1–4 and
padding 0–k//2 along one dimension (44 of them), each at an input length that cycles
through the smallest it accepts to 7 more, paired into 2-D pools (each kind × mode, 176) and,
for every other one, grouped into 3-D ones (24).  ``test_pool_geometry_coverage`` prints which
rules they meet, read off the oracle's own window enumeration (tests/pool_windows.py), and
asserts that each rule is met by both kinds in both ranks.

To keep it cheap, ``CHAIN`` geometries of a rank share one tiny spec (``chain``): two
channels, and before each pool a convolution that sizes its input to the geometry's (kernel 1
or 2 with padding to grow it, a wider kernel to shrink it), then a fully connected head, so one
build and one call per runtime check them all; the head's output is the logits.  Every weight and input is positive, so no ReLU
sits near its kink; ``test_max_windows_have_no_near_ties`` checks that no max-pool window's
two largest values are closer than 1e-5 (relative), where float32 might pick another winner.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import backend_or_skip, selected_runtimes
from pool_windows import pool_features

import nin
from nin import reference
from nin.checks import ForwardCase, GradientCase, check_gradients, check_layers
from nin.frameworks import backend_trains

CHANNELS = 2
CHAIN = 12  # pools per spec
AXES = [(k, s, p) for k in range(1, 6) for s in range(1, 5) for p in range(k // 2 + 1)]  # (kernel, stride, padding)
NARROW = [axis for axis in AXES if axis[0] <= 2]


def _length(axis: tuple[int, int, int], i: int) -> int:
    """An input length for the axis: the smallest that holds a window, plus 0–7 by ``i``."""
    k, _, p = axis
    return max(1, k - 2 * p) + i % 8


def _geometries() -> list[tuple[type, bool, tuple[int, ...], tuple[tuple[int, int, int], ...]]]:
    """(pool class, ceil mode, input size, per-dimension (kernel, stride, padding)).  Every
    axis of ``AXES`` meets a kernel-1-or-2 axis (``NARROW``, alternating sides), which keeps
    the window volume — what a max pool's backward pass costs to compile in JAX — at most
    5·2·2 while every rule is met."""
    out = []
    combos = list(itertools.product((nin.MaxPool, nin.AvgPool), (False, True)))
    for i, axis in enumerate(AXES):
        for j, (pool, ceil) in enumerate(combos):
            other = NARROW[(3 * i + j) % len(NARROW)]
            axes = (axis, other) if (i + j) % 2 else (other, axis)
            out.append((pool, ceil, tuple(_length(a, i + 2 * d + j) for d, a in enumerate(axes)), axes))
        if i % 2 and i > 3:
            continue  # 3-D costs the frameworks most: every other axis, 24 in all
        pool, ceil = combos[i // 2 % 4] if i > 3 else combos[i]
        axes = [axis, NARROW[i % len(NARROW)], NARROW[(i + 5) % len(NARROW)]]
        axes = tuple(axes[(d + i) % 3] for d in range(3))
        out.append((pool, ceil, tuple(_length(a, i + 3 * d) for d, a in enumerate(axes)), axes))
    return out


GEOMETRIES = _geometries()


def _pool(geometry) -> nin.MaxPool | nin.AvgPool:
    make, ceil, _, axes = geometry
    kernel, stride, padding = (tuple(a[d] for a in axes) for d in range(3))
    return make(kernel, stride, padding, ceil)


def _resize(size: tuple[int, ...], target: tuple[int, ...]) -> nin.NiNBlock:
    """One convolution taking ``size`` to ``target``: kernel 1 (or 2) with padding to grow
    by an even (odd) amount, no padding and a wider kernel to shrink."""
    kernel, padding = [], []
    for m, n in zip(size, target, strict=True):
        grow = n - m
        if grow >= 0:
            kernel.append(1 + grow % 2)
            padding.append((grow + grow % 2) // 2)
        else:
            kernel.append(1 - grow)
            padding.append(0)
    ndim = len(size)
    return nin.NiNBlock((nin.Conv(CHANNELS, tuple(kernel), (1,) * ndim, tuple(padding)),))


def chain(geometries) -> nin.NiNSpec:
    """One spec running ``geometries`` one after another (each pool at its own input size)."""
    size = geometries[0][2]
    layers: list = []
    for geometry in geometries:
        layers.append(_resize(size, geometry[2]))
        pool = _pool(geometry)
        layers.append(pool)
        size = tuple(
            len(reference.window_starts(*a, pool.ceil_mode))
            for a in zip(geometry[2], *zip(*geometry[3], strict=True), strict=True)
        )
    return nin.NiNSpec("pool_chain", 1, geometries[0][2], 2, (*layers, nin.Linear(2)))


def _positive_weights(spec: nin.NiNSpec, seed: int) -> nin.weights.Weights:
    """Positive convolution weights (mean 1/fan-in) and biases: every activation is positive,
    so no ReLU is near its kink; the head's weights are signed."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in nin.weights.weight_shapes(spec).items():
        if name.startswith("head"):
            weights[name] = rng.standard_normal(shape).astype(np.float32)
        elif name.endswith(".bias"):
            weights[name] = rng.uniform(0.1, 0.3, shape).astype(np.float32)
        else:
            weights[name] = (rng.uniform(0.5, 1.5, shape) / np.prod(shape[1:])).astype(np.float32)
    return weights


def _case(ndim: int, index: int) -> tuple[GradientCase, ForwardCase, list]:
    rank = [g for g in GEOMETRIES if len(g[2]) == ndim]
    geometries = rank[index * CHAIN : (index + 1) * CHAIN]
    spec = chain(geometries)
    weights = _positive_weights(spec, index)
    x = np.random.default_rng([ndim, index]).uniform(0.5, 1.5, (2, 1, *spec.input_size)).astype(np.float32)
    return GradientCase.of(spec, weights, x, np.array([0, 1])), ForwardCase.of(spec, weights, x), geometries


CHAINS = [(ndim, i) for ndim in (2, 3) for i in range(-(-sum(len(g[2]) == ndim for g in GEOMETRIES) // CHAIN))]
_CASES: dict = {}


def case(ndim: int, index: int):
    if (ndim, index) not in _CASES:
        _CASES[ndim, index] = _case(ndim, index)
    return _CASES[ndim, index]


def _describe(geometries) -> str:
    return "; ".join(
        f"pool{j}: {'max' if g[0] is nin.MaxPool else 'avg'} {'ceil' if g[1] else 'floor'} on {g[2]}, "
        f"kernel/stride/padding {[a for a in g[3]]}"
        for j, g in enumerate(geometries)
    )


@pytest.mark.parametrize(("ndim", "index"), CHAINS, ids=[f"{n}d-{i:02d}" for n, i in CHAINS])
@pytest.mark.parametrize("runtime_name", selected_runtimes())
def test_pool_geometry_matches_oracle(runtime_name, ndim, index):
    adapter = backend_or_skip(runtime_name)
    grad, forward, geometries = case(ndim, index)
    net = adapter.build(forward.spec)
    adapter.load_state(net, forward.weights)
    checks = [check_layers(adapter, net, forward)]  # the head's output is the logits
    if backend_trains(runtime_name):
        checks.append(check_gradients(adapter, net, grad))
    for check in checks:
        assert check.ok, (
            f"{runtime_name} {ndim}-D chain {index}: {check.property}: {check.message} [{_describe(geometries)}]"
        )


def test_max_windows_have_no_near_ties():
    """In every max-pool window of the sweep, the two largest inputs differ by ≥ 1e-5 of the
    larger, or are equal up to float64 rounding (≤ 1e-12): cells computed from a convolution's
    zero padding alone, which hold its bias (or an average of it), so whichever wins, the
    gradient reaches the same parameter the same way."""
    worst = np.inf
    for ndim, index in CHAINS:
        _, forward, _ = case(ndim, index)
        names = list(forward.acts)
        for name, layer in forward.spec.named_layers():
            if not isinstance(layer, nin.MaxPool):
                continue
            a = forward.acts[names[names.index(name) - 1]]
            starts = [reference.window_starts(n, k, s, p, layer.ceil_mode) for n, k, s, p in
                      zip(a.shape[2:], layer.kernel, layer.stride, layer.padding, strict=True)]  # fmt: skip
            for origin in itertools.product(*starts):
                window = a[
                    (
                        slice(None),
                        slice(None),
                        *(slice(max(o, 0), o + k) for o, k in zip(origin, layer.kernel, strict=True)),
                    )
                ]
                top = np.sort(window.reshape(*window.shape[:2], -1), axis=-1)[..., -2:]
                if top.shape[-1] < 2:
                    continue
                gap = (top[..., 1] - top[..., 0]) / top[..., 1]
                worst = min(worst, float(gap[gap > 1e-12].min(initial=np.inf)))
    assert worst >= 1e-5, f"a max-pool window's two largest values differ by only {worst:.1e} of the larger"


def test_pool_geometry_coverage(capsys):
    """Every rule is met by max and by average pooling, in 2-D and 3-D, and the sweep holds at
    least 200 geometries per runtime; the coverage table is printed."""
    counts: dict[str, int] = {}
    by_kind_rank: set[tuple[str, str]] = set()
    for geometry in GEOMETRIES:
        found = pool_features(geometry[2], _pool(geometry))
        for feature in found:
            counts[feature] = counts.get(feature, 0) + 1
        kind = "max" if geometry[0] is nin.MaxPool else "avg"
        by_kind_rank |= {(f"{len(geometry[2])}-D", f) for f in found if f.startswith(kind)}
    rules = ("padded", "past padding", "dropped", "wider than input", "stride > 1", "gaps")
    with capsys.disabled():
        print(f"\npooling geometry sweep: {len(GEOMETRIES)} geometries per runtime, {len(CHAINS)} specs")
        for kind in ("max", "avg"):
            line = ", ".join(f"{rule} {counts.get(f'{kind} {rule}', 0)}" for rule in rules)
            print(f"  {kind} {counts[kind]}: {line}")
        print("  " + ", ".join(f"{f} {counts[f]}" for f in ("floor", "ceil", "2-D", "3-D", "anisotropic")))
    assert len(GEOMETRIES) >= 200, len(GEOMETRIES)
    missing = [(rank, f"{kind} {rule}") for rank in ("2-D", "3-D") for kind in ("max", "avg") for rule in rules
               if (rank, f"{kind} {rule}") not in by_kind_rank]  # fmt: skip
    assert not missing, f"the sweep never meets {missing}"
    assert counts["floor"] and counts["ceil"] and counts["anisotropic"]
    # every (kernel, stride, padding) of kernels 1–5, strides 1–4, paddings 0–2 (p ≤ k//2)
    used = {a for g in GEOMETRIES for a in g[3]}
    assert used == set(AXES) and {k for k, _, _ in used} == set(range(1, 6)) and {p for *_, p in used} == {0, 1, 2}


CELLS = [(1.0, 2.0), (2.0, 1.0), (0.5, 2.5), (3.0, 0.0)]  # two input channels; each cell sums to exactly 3


def _tie_case() -> tuple[GradientCase, np.ndarray]:
    """A max pool whose windows hold exact ties of cells that differ in what made them: a 1×1
    convolution adds two input channels with weights 1 and 1, so every cell of ``CELLS`` is 3;
    the convolution's weight gradient then says which cell of each window got the pool's
    gradient (it sums the winners' inputs).  Each 2×2 window holds the four cells in another
    order.  Returns the case and each window's cells in row-major order, (window, cell, channel)."""
    spec = nin.NiNSpec(
        "max_pool_ties",
        2,
        (4, 4),
        2,
        (nin.NiNBlock((nin.Conv(1, (1, 1), (1, 1), (0, 0)),)), nin.MaxPool((2, 2), (2, 2), (0, 0)), nin.Linear(2)),
    )
    weights = {name: np.zeros(shape, np.float32) for name, shape in nin.weights.weight_shapes(spec).items()}
    weights["block0.conv0.weight"][:] = 1.0
    weights["head.weight"][:] = [[1.0, -2.0, 3.0, -4.0], [-1.0, 0.5, 2.0, 1.0]]
    x = np.zeros((1, 2, 4, 4), np.float32)
    windows = np.zeros((4, 4, 2))
    for w, (i, j) in enumerate(itertools.product((0, 2), (0, 2))):
        order = CELLS[w:] + CELLS[:w]
        windows[w] = order
        for c, (di, dj) in enumerate(itertools.product((0, 1), (0, 1))):
            x[0, :, i + di, j + dj] = order[c]
    return GradientCase.of(spec, weights, x, np.array([0])), windows


@pytest.mark.parametrize("runtime_name", [b for b in selected_runtimes() if backend_trains(b)])
def test_max_pool_ties_go_to_the_first_cell(runtime_name):
    """Where a window's maximum is tied, its gradient goes to the window's first cell in
    row-major order, as in the oracle and PyTorch (MLX's ``nn.MaxPool2d`` splits it evenly).
    The convolution's weight gradient is worked out by hand for the three conventions (first
    cell, last cell, split evenly), the oracle's must be the first one's, and the backend's
    must match the oracle's."""
    grad, windows = _tie_case()
    # by hand: every pooled value is 3, so the logits are 3·(row sums of the head); softmax − one-hot
    head = grad.weights["head.weight"].astype(np.float64)
    logits = 3.0 * head.sum(axis=1)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    d_pool = (p - np.array([1.0, 0.0])) @ head  # the loss's gradient at each window's output
    by_rule = {
        "first": d_pool @ windows[:, 0, :],
        "last": d_pool @ windows[:, -1, :],
        "split": d_pool @ windows.mean(axis=1),
    }
    oracle = grad.grads["block0.conv0.weight"].reshape(-1)
    np.testing.assert_allclose(oracle, by_rule["first"], rtol=1e-6)
    assert not np.allclose(by_rule["first"], by_rule["last"]) and not np.allclose(by_rule["first"], by_rule["split"])
    adapter = backend_or_skip(runtime_name)
    net = adapter.build(grad.spec)
    adapter.load_state(net, grad.weights)
    check = check_gradients(adapter, net, grad)
    assert check.ok, f"{runtime_name}: tied max-pool windows: {check.property}: {check.message}"
