"""The conformance suite: every backend against the spec and the NumPy oracle.

Parametrized by (backend, model[, device]) so each failure has its own id, e.g.
``test_forward_matches_reference[jax-nin_cifar10]``.  Agreement between frameworks follows
from every one of them agreeing with the same oracle.  Each property is checked by the
function of ``nin.checks`` that ``nin compare`` and ``nin conformance`` call too; the
tolerances and why they are what they are: ``nin.conformance``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip, batch, gpu_backend_or_skip, require, selected_backends, selected_runtimes
from pool_windows import spec_pool_features

import nin
from nin import reference
from nin.checks import (
    FORWARD_RTOL,
    MIN_RELU_MARGIN,
    Check,
    GradientCase,
    check_gradients,
    check_layer_shapes,
    check_layers,
    check_logits,
    check_param_count,
    forward_case,
    gradient_case,
    random_weights,
)
from nin.checks import max_rel_error as _rel

MODELS = nin.list_models()
CASES = [(b, m) for b in selected_backends() for m in MODELS]
IDS = [f"{b}-{m}" for b, m in CASES]
# forward cases also run the inference-only runtimes (onnxruntime); gradient cases do not
RUNTIME_CASES = [(b, m) for b in selected_runtimes() for m in MODELS]
RUNTIME_IDS = [f"{b}-{m}" for b, m in RUNTIME_CASES]


@pytest.fixture(scope="module")
def built():
    """One live model per (backend, model), holding ``nin.checks.forward_case(spec)``'s
    weights (``random_weights``: non-zero biases)."""
    cache = {}

    def get(backend_name: str, model: str):
        if (backend_name, model) not in cache:
            adapter = backend_or_skip(backend_name)
            spec = nin.get_spec(model)
            net = adapter.build(spec, seed=0)
            adapter.load_state(net, forward_case(spec).weights)
            cache[backend_name, model] = (adapter, spec, net)
        return cache[backend_name, model]

    return get


def assert_holds(check: Check, what: str) -> None:
    """A ``nin.checks`` verdict as a test: the message names the case and the figures."""
    assert check.ok, f"{what}: {check.property}: {check.message}"


@pytest.mark.parametrize("backend_name, model", RUNTIME_CASES, ids=RUNTIME_IDS)
def test_param_count_matches_spec(built, backend_name, model):
    adapter, spec, net = built(backend_name, model)
    assert_holds(check_param_count(adapter, net, spec), f"{backend_name}/{model}")


@pytest.mark.parametrize("backend_name, model", RUNTIME_CASES, ids=RUNTIME_IDS)
def test_layer_shapes_match_spec(built, backend_name, model):
    """Names, order and exact shapes against the oracle's, which sizes every window from the
    pooling rule itself (``reference.window_starts``), not from ``nin.shapes``."""
    adapter, spec, net = built(backend_name, model)
    case = forward_case(spec)
    assert_holds(check_layer_shapes(adapter.intermediates(net, case.x), case.acts), f"{backend_name}/{model}")


@pytest.mark.parametrize("backend_name, model", RUNTIME_CASES, ids=RUNTIME_IDS)
def test_forward_matches_reference(built, backend_name, model):
    adapter, spec, net = built(backend_name, model)
    case = forward_case(spec)
    assert nin.weights.validate_weights(spec, adapter.export_state(net)).keys() == case.weights.keys()
    assert_holds(check_layers(adapter, net, case), f"{backend_name}/{model}")
    assert_holds(check_logits(adapter, net, case), f"{backend_name}/{model}")


@pytest.mark.parametrize("backend_name, model", CASES, ids=IDS)
def test_gradients_match_reference(backend_name, model):
    """At the model's smallest valid input, away from ReLU kinks (nin.conformance)."""
    adapter = backend_or_skip(backend_name)
    require(adapter, "loss_and_grads")
    case = gradient_case(model)
    net = adapter.build(case.spec, seed=1)
    adapter.load_state(net, case.weights)
    assert_holds(check_gradients(adapter, net, case), f"{backend_name}/{model}")


@pytest.mark.parametrize("model", MODELS)
def test_gradient_cases_are_well_conditioned(model):
    margin = gradient_case(model).margin
    assert margin >= MIN_RELU_MARGIN, f"{model}: a ReLU pre-activation is {margin:.1e} of its terms from 0"


def test_relu_margin_sees_a_kink():
    spec = nin.NiNSpec("k", 1, (1, 1), 2, (nin.nin_block(2, 1, mlp=()), nin.GlobalAvgPool()))
    w = {"block0.conv0.weight": np.array([1.0, -1.0]).reshape(2, 1, 1, 1), "block0.conv0.bias": np.array([-1.0, 0.5])}
    x = np.full((1, 1, 1, 1), 1.0 + 1e-9)  # unit 0: z = 1e-9 over terms 2 + 1e-9
    assert reference.relu_margin(spec, w, x) == pytest.approx(0.5e-9, rel=1e-3)


def test_gradient_oracle_matches_finite_differences():
    """The reference backward pass itself, against central differences in float64."""
    spec = nin.get_spec("nin_tiny", input_size=7)
    weights = {k: v.astype(np.float64) for k, v in nin.init_weights(spec, seed=2, method="kaiming").items()}
    weights = {k: v + (0.05 if k.endswith("bias") else 0.0) for k, v in weights.items()}
    x = batch(spec, 2, seed=2).astype(np.float64)
    labels = np.array([1, 7])
    _, grads = reference.loss_and_grads(spec, weights, x, labels)
    rng = np.random.default_rng(0)
    for name in weights:
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in weights[name].shape)
            eps = 1e-6
            plus = {**weights, name: weights[name].copy()}
            minus = {**weights, name: weights[name].copy()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd = (
                reference.loss_and_grads(spec, plus, x, labels)[0] - reference.loss_and_grads(spec, minus, x, labels)[0]
            ) / (2 * eps)
            assert abs(fd - grads[name][idx]) <= 1e-6 + 1e-4 * abs(fd), (
                f"d{name}{idx}: backward {grads[name][idx]}, finite differences {fd}"
            )


def test_dropout_only_in_training(backend):
    spec = nin.get_spec("nin_tiny")
    net = backend.build(spec, seed=0)
    x = batch(spec, 4)
    eval1, eval2 = backend.forward(net, x), backend.forward(net, x)
    np.testing.assert_array_equal(eval1, eval2, err_msg="evaluation must be deterministic")
    train1 = backend.forward(net, x, train=True)
    train2 = backend.forward(net, x, train=True)
    assert not np.allclose(train1, eval1), "train=True must apply dropout"
    assert not np.allclose(train1, train2), "each training forward must draw a fresh dropout mask"
    np.testing.assert_array_equal(
        backend.forward(net, x), eval1, err_msg="training forward changed the evaluation output"
    )


def test_batch_size_independent(backend):
    spec = nin.get_spec("nin_cifar10")
    net = backend.build(spec, seed=0)
    x = batch(spec, 5)
    whole = backend.forward(net, x)
    for i in range(len(x)):
        one = backend.forward(net, x[i : i + 1])
        assert _rel(one[0], whole[i]) <= FORWARD_RTOL, f"example {i} alone differs from in a batch of 5"


@pytest.mark.parametrize("model", ["nin_tiny", "nin_d2l_fc", "nin3d"])
def test_export_load_roundtrip_is_exact(backend, model):
    spec = nin.get_spec(model)
    net = backend.build(spec, seed=0)
    weights = random_weights(spec, seed=5)
    backend.load_state(net, weights)
    exported = backend.export_state(net)
    assert list(exported) == list(weights)
    for name in weights:
        assert exported[name].dtype == np.float32
        np.testing.assert_array_equal(exported[name], weights[name], err_msg=name)
    backend.load_state(net, exported)
    for name, value in backend.export_state(net).items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)


# Each initialiser's distribution, from its definition (not from nin.init_weights): Glorot &
# Bengio 2010 (uniform, bound √(6/(fan_in + fan_out))), He et al. 2015 (normal, std √(2/fan_in)),
# the Caffe filler (normal, std 0.05), and "centered" (He normal, each output's fan-in summing to 0,
# which takes one of fan_in degrees of freedom: std √(2/fan_in · (1 − 1/fan_in))).
INIT_STD = {
    "xavier": lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out)),
    "gaussian": lambda fan_in, fan_out: 0.05,
    "kaiming": lambda fan_in, fan_out: np.sqrt(2.0 / fan_in),
    "centered": lambda fan_in, fan_out: np.sqrt(2.0 / fan_in * (1 - 1 / fan_in)),
}


def test_initial_weights_follow_their_definitions(backend):
    """``build(spec, seed, init)`` gives every backend the same weights: bit for bit equal for
    the same seed (two builds, and ``nin.init_weights``), different for another seed, zero
    biases, and weights drawn as each initialiser's definition says — the sample standard
    deviation of every tensor within 6 standard errors (√(1/(2n)) relative, n values) of the
    definition's, xavier's within its bound, centered's rows summing to 0.  nin_cifar10: tensors
    of 1,930 to 36,864 values, so a fan-in or fan-out off by the kernel size shows."""
    spec = nin.get_spec("nin_cifar10")
    for method in nin.weights.INITIALIZERS:
        weights = backend.export_state(backend.build(spec, seed=3, init=method))
        again = backend.export_state(backend.build(spec, seed=3, init=method))
        other = backend.export_state(backend.build(spec, seed=4, init=method))
        shared = nin.init_weights(spec, seed=3, method=method)
        for name, w in weights.items():
            what = f"{method} {name}"
            np.testing.assert_array_equal(w, again[name], err_msg=f"{what}: two builds with seed 3 differ")
            np.testing.assert_array_equal(w, shared[name], err_msg=f"{what}: not nin.init_weights(spec, 3)")
            if name.endswith(".bias"):
                assert not w.any(), f"{what}: biases must start at 0"
                continue
            assert not np.array_equal(w, other[name]), f"{what}: seeds 3 and 4 give the same weights"
            receptive = int(np.prod(w.shape[2:]))
            fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
            want = INIT_STD[method](fan_in, fan_out)
            got = float(w.std())
            assert abs(got / want - 1) <= 6 / np.sqrt(2 * w.size), (
                f"{what}: std {got:.4g}, but the definition gives {want:.4g} (fan_in {fan_in}, fan_out {fan_out})"
            )
            if method == "xavier":
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                assert np.abs(w).max() <= bound, f"{what}: |w| reaches {np.abs(w).max():.4g} > bound {bound:.4g}"
            if method == "centered":
                sums = np.abs(w.reshape(len(w), -1).sum(axis=1)).max()
                assert sums <= 1e-5 * np.abs(w).sum(axis=tuple(range(1, w.ndim))).max(), f"{what}: rows sum to {sums}"


def test_load_state_names_every_problem(backend):
    spec = nin.get_spec("nin_tiny")
    net = backend.build(spec)
    weights = nin.init_weights(spec)
    del weights["block0.conv1.bias"]
    weights["block9.conv0.weight"] = np.zeros((1,), np.float32)
    weights["block1.conv0.weight"] = weights["block1.conv0.weight"].transpose(2, 3, 1, 0)
    with pytest.raises(nin.WeightsError) as err:
        backend.load_state(net, weights)
    msg = str(err.value)
    assert "block0.conv1.bias" in msg and "block9.conv0.weight" in msg and "block1.conv0.weight" in msg


BAD_INPUTS = {
    "rank": lambda x: x[0],
    "channels": lambda x: np.concatenate([x, x], axis=1),
    "dtype": lambda x: (x * 255).astype(np.uint8),
    "nhwc": lambda x: x.transpose(0, 2, 3, 1),
    "too_small": lambda x: x[:, :, :2, :2],
    "nan": lambda x: np.where(np.arange(x.shape[-1]) == 3, np.nan, x).astype(np.float32),
    "inf": lambda x: np.where(np.arange(x.shape[-1]) == 5, -np.inf, x).astype(np.float32),
    "empty": lambda x: x[:0],
    "not_array": lambda x: x.tolist(),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_clear_error(backend, case):
    spec = nin.get_spec("nin_tiny")
    net = backend.build(spec)
    x = BAD_INPUTS[case](batch(spec, 2))
    with pytest.raises(nin.InputError, match="nin_tiny"):
        backend.forward(net, x)
    with pytest.raises(nin.InputError, match="nin_tiny"):
        backend.intermediates(net, x)


@pytest.mark.gpu
@pytest.mark.parametrize("backend_name", selected_backends())
@pytest.mark.parametrize("model", ["nin_tiny", "nin_cifar10", "nin_d2l", "nin3d"])
def test_gpu_forward_matches_reference(backend_name, model):
    adapter = gpu_backend_or_skip(backend_name)
    spec = nin.get_spec(model)
    case = forward_case(spec)
    net = adapter.build(spec, seed=0, device="gpu")
    adapter.load_state(net, case.weights)
    assert_holds(check_layers(adapter, net, case), f"{backend_name}/{model}/gpu")
    assert_holds(check_logits(adapter, net, case), f"{backend_name}/{model}/gpu")


def test_bad_labels_get_clear_error(backend):
    spec = nin.get_spec("nin_tiny")
    net = backend.build(spec)
    with pytest.raises(nin.InputError, match=r"\[0, 10\)"):
        backend.loss_and_grads(net, batch(spec, 2), np.array([0, 10]))


# -- dropout against its definition ------------------------------------------------------------

DROPOUT_RATE = 0.3


def _dropout_probe(channels: int = 4, size: int = 24) -> tuple[nin.NiNSpec, dict[str, np.ndarray]]:
    """A spec whose training-mode logits *are* its dropout layer's output: an identity 1×1
    convolution (bias 1, so every value is positive), a 2×2 max-pool, dropout, and an identity
    fully connected head.  Were the dropout applied before the pool, a kept value would not be
    the pooled value scaled by 1/(1−p), and zeros would be far rarer than p."""
    features = channels * (size // 2) ** 2
    spec = nin.NiNSpec(
        "dropout_probe",
        channels,
        (size, size),
        features,
        (nin.nin_block(channels, 1, mlp=()), nin.max_pool(2), nin.Dropout(DROPOUT_RATE), nin.Linear(features)),
    )
    weights = {
        "block0.conv0.weight": np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1),
        "block0.conv0.bias": np.ones(channels, np.float32),
        "head.weight": np.eye(features, dtype=np.float32),
        "head.bias": np.zeros(features, np.float32),
    }
    return spec, weights


def test_dropout_matches_its_definition(backend):
    spec, weights = _dropout_probe()
    net = backend.build(spec)
    backend.load_state(net, weights)
    x = np.random.default_rng(0).random((4, spec.in_channels, *spec.input_size), np.float32)
    pooled = backend.forward(net, x)  # evaluation mode: dropout is the identity
    _, acts = reference.forward(spec, weights, x)
    assert _rel(pooled, acts["dropout0"].reshape(len(x), -1)) <= FORWARD_RTOL, "evaluation-mode output is not the pool"
    n = pooled.size
    bound = 5 * np.sqrt(n * DROPOUT_RATE * (1 - DROPOUT_RATE))  # 5 σ of the binomial count
    draws = [backend.forward(net, x, train=True) for _ in range(2)]
    for out in draws:
        dropped = out == 0
        assert abs(dropped.sum() - n * DROPOUT_RATE) <= bound, (
            f"{dropped.sum()} of {n} values dropped; rate {DROPOUT_RATE} expects {n * DROPOUT_RATE:.0f} ± {bound:.0f}"
        )
        kept = ~dropped
        scaled = pooled[kept] / (1 - DROPOUT_RATE)
        err = float(np.max(np.abs(out[kept] - scaled) / scaled))
        assert err <= 1e-6, f"kept values are not input/(1−p) = input/{1 - DROPOUT_RATE}: relative error {err:.1e}"
        per_channel = dropped.reshape(len(x), spec.in_channels, -1).mean(axis=2)
        assert ((per_channel > 0) & (per_channel < 1)).all(), "whole channels dropped: dropout must be per value"
    assert (draws[0] != draws[1]).any(), "two training forwards drew the same mask"


# -- gradients where the pooling rules bite --------------------------------------------------------


def _edge_spec(ndim: int, size: tuple[int, ...]) -> nin.NiNSpec:
    """Max-pool 3/2 padding 1 in ceil mode (padded windows and a last window hanging past the
    padding), then avg-pool 3/2 padding 1 in ceil mode (divisors counting padding, and clipped
    where the last window hangs past input + padding)."""
    return nin.NiNSpec(
        f"edges{ndim}d",
        2,
        size,
        3,
        (
            nin.nin_block(4, 3, 1, 1, mlp=(4,), ndim=ndim),
            nin.max_pool(3, 2, 1, ceil_mode=True, ndim=ndim),
            nin.nin_block(4, 3, 1, 1, mlp=(4,), ndim=ndim),
            nin.avg_pool(3, 2, 1, ceil_mode=True, ndim=ndim),
            nin.nin_block(3, 1, mlp=(3,), ndim=ndim),
            nin.GlobalAvgPool(),
        ),
    )


# 2-D 10×11: along H, 10 → max-pool 5 windows, the last [7, 10) hanging past the padded end 9;
# along W, 11 → max-pool 6 → avg-pool 4 windows, the last [5, 8) clipped at 7 (divisor 2 of 3).
# 3-D 10×6×9: the same along D, and along H 6 → max-pool 4 (the last [5, 8) past 7) → avg-pool 3
# (the last [3, 6) clipped at 5).  test_edge_cases_meet_every_pooling_rule checks they occur.
EDGE_CASES = {"2d": _edge_spec(2, (10, 11)), "3d": _edge_spec(3, (10, 6, 9))}


EDGE_RULES = {"max padded", "max past padding", "avg padded", "avg past padding"}


def _edge_features(spec: nin.NiNSpec) -> set[str]:
    """Which of ``EDGE_RULES`` a spec's forward pass at its input size meets: each pool
    classified at its own input, the oracle's output of the layer before it."""
    return spec_pool_features(spec, forward_case(spec).acts) & EDGE_RULES


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_meet_every_pooling_rule(case):
    assert _edge_features(EDGE_CASES[case]) == EDGE_RULES


def test_edge_features_read_each_pools_own_input():
    """A 2×2 stride-2 block takes 13 to 6 before a 3/2 ceil-mode max pool: on 6 its windows
    start at 0, 2, 4 and the last, [4, 7), hangs past the input; on 13 (the spec's input, where
    a helper that misses the block would look) they tile [0, 13) exactly."""
    spec = nin.NiNSpec(
        "stale", 1, (13, 13), 2, (nin.nin_block(2, 2, 2, mlp=()), nin.max_pool(3, 2, ceil_mode=True), nin.Linear(2))
    )
    assert _edge_features(spec) == {"max past padding"}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_gradients_at_pooling_edges_match_reference(backend, case):
    require(backend, "loss_and_grads")
    spec = EDGE_CASES[case]
    weights = random_weights(spec, seed=2)
    margin, seed = max((reference.relu_margin(spec, weights, batch(spec, 2, s)), s) for s in range(8))
    assert margin >= MIN_RELU_MARGIN, f"{case}: every input seed sits {margin:.1e} from a ReLU kink"
    net = backend.build(spec)
    backend.load_state(net, weights)
    assert_holds(check_gradients(backend, net, GradientCase.of(spec, weights, batch(spec, 2, seed), [0, 2])), case)


def test_a_required_backend_fails_instead_of_skipping(monkeypatch):
    """NIN_REQUIRE_BACKENDS turns "unavailable" into a failure that says why (conftest.py)."""
    import nin.frameworks

    monkeypatch.setattr(nin.frameworks, "unavailable_reason", lambda name: f"backend {name!r} needs jax")
    monkeypatch.setenv("NIN_REQUIRE_BACKENDS", "torch,jax")
    with pytest.raises(pytest.fail.Exception, match="backend 'jax' needs jax; NIN_REQUIRE_BACKENDS=torch,jax requires"):
        backend_or_skip("jax")
    monkeypatch.setenv("NIN_REQUIRE_BACKENDS", "torch")
    with pytest.raises(pytest.skip.Exception, match="backend 'jax' needs jax"):
        backend_or_skip("jax")


def test_required_gpu_fails_with_the_reason(monkeypatch):
    """NIN_REQUIRE_GPU turns "no GPU visible" into a failure that says why (conftest.py)."""
    import nin.checks

    monkeypatch.setattr(nin.checks, "gpu_missing_reason", lambda name: f"{name} 9.9 is a CPU-only build")
    monkeypatch.setenv("NIN_REQUIRE_GPU", "torch,jax")
    with pytest.raises(pytest.fail.Exception, match="no GPU visible to torch: torch 9.9 is a CPU-only build; NIN_"):
        gpu_backend_or_skip("torch")
    monkeypatch.setenv("NIN_REQUIRE_GPU", "jax")
    with pytest.raises(pytest.skip.Exception, match="no GPU visible to torch: torch 9.9 is a CPU-only build"):
        gpu_backend_or_skip("torch")
