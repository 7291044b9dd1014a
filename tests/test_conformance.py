"""The conformance suite: every backend against the spec and the NumPy oracle.

Parametrized by (backend, model[, device]) so each failure has its own id, e.g.
``test_forward_matches_reference[jax-nin_cifar10]``.  Agreement between frameworks follows
from every one of them agreeing with the same oracle.  The tolerances and why they are what
they are: ``nin.conformance``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip, batch, reference_forward, require, selected_backends, selected_runtimes

import nin
from nin import reference
from nin.conformance import FORWARD_RTOL, GRAD_RTOL, MIN_RELU_MARGIN, gradient_case, random_weights
from nin.conformance import max_rel_error as _rel

MODELS = nin.list_models()
CASES = [(b, m) for b in selected_backends() for m in MODELS]
IDS = [f"{b}-{m}" for b, m in CASES]
# forward cases also run the inference-only runtimes (onnxruntime); gradient cases do not
RUNTIME_CASES = [(b, m) for b in selected_runtimes() for m in MODELS]
RUNTIME_IDS = [f"{b}-{m}" for b, m in RUNTIME_CASES]


@pytest.fixture(scope="module")
def built():
    """One live model per (backend, model), holding ``random_weights(spec, 0)``."""
    cache = {}

    def get(backend_name: str, model: str):
        if (backend_name, model) not in cache:
            adapter = backend_or_skip(backend_name)
            spec = nin.get_spec(model)
            net = adapter.build(spec, seed=0)
            adapter.load_state(net, reference_forward(spec)[1])
            cache[backend_name, model] = (adapter, spec, net)
        return cache[backend_name, model]

    return get


@pytest.mark.parametrize("backend_name, model", RUNTIME_CASES, ids=RUNTIME_IDS)
def test_param_count_matches_spec(built, backend_name, model):
    adapter, spec, net = built(backend_name, model)
    assert adapter.param_count(net) == nin.param_count(spec), (
        f"{backend_name}/{model}: the framework counts {adapter.param_count(net):,} parameters "
        f"but the spec says {nin.param_count(spec):,}"
    )


@pytest.mark.parametrize("backend_name, model", RUNTIME_CASES, ids=RUNTIME_IDS)
def test_layer_shapes_match_spec(built, backend_name, model):
    adapter, spec, net = built(backend_name, model)
    x, *_ = reference_forward(spec)
    acts = adapter.intermediates(net, x)
    want = nin.output_shapes(spec)
    assert list(acts) == list(want), f"{backend_name}/{model}: layers {list(acts)} but spec says {list(want)}"
    for name, shape in want.items():
        got = tuple(acts[name].shape)
        assert got == (len(x), *shape), f"{backend_name}/{model} {name}: shape {got} but spec says {(len(x), *shape)}"


@pytest.mark.parametrize("backend_name, model", RUNTIME_CASES, ids=RUNTIME_IDS)
def test_forward_matches_reference(built, backend_name, model):
    adapter, spec, net = built(backend_name, model)
    x, weights, ref_logits, ref_acts = reference_forward(spec)
    assert nin.weights.validate_weights(spec, adapter.export_state(net)).keys() == weights.keys()
    acts = adapter.intermediates(net, x)
    for name, want in ref_acts.items():
        err = _rel(acts[name], want)
        assert err <= FORWARD_RTOL, (
            f"{backend_name}/{model} {name}: max|Δ| = {err:.2e}·max|ref|, allowed {FORWARD_RTOL:.0e}"
        )
    logits = adapter.forward(net, x)
    assert logits.dtype == np.float32 and logits.shape == ref_logits.shape
    err = _rel(logits, ref_logits)
    assert err <= FORWARD_RTOL, (
        f"{backend_name}/{model} logits: max|Δ| = {err:.2e}·max|ref|, allowed {FORWARD_RTOL:.0e}"
    )


@pytest.mark.parametrize("backend_name, model", CASES, ids=IDS)
def test_gradients_match_reference(backend_name, model):
    """At the model's smallest valid input, away from ReLU kinks (nin.conformance)."""
    adapter = backend_or_skip(backend_name)
    require(adapter, "loss_and_grads")
    spec, weights, x, labels = gradient_case(model)
    want_loss, want = reference.loss_and_grads(spec, weights, x, labels)
    net = adapter.build(spec, seed=1)
    adapter.load_state(net, weights)
    loss, grads = adapter.loss_and_grads(net, x, labels)
    assert abs(loss - want_loss) <= 1e-5 * max(1.0, abs(want_loss)), (
        f"{backend_name}/{model}: loss {loss} but reference {want_loss}"
    )
    assert list(grads) == list(want), f"{backend_name}/{model}: gradient names {list(grads)} but canonical {list(want)}"
    for name, g in want.items():
        assert grads[name].shape == g.shape, (
            f"{backend_name}/{model} d{name}: shape {grads[name].shape}, canonical {g.shape}"
        )
        err = _rel(grads[name], g)
        assert err <= GRAD_RTOL, f"{backend_name}/{model} d{name}: max|Δ| = {err:.2e}·max|ref|, allowed {GRAD_RTOL:.0e}"


@pytest.mark.parametrize("model", MODELS)
def test_gradient_cases_are_well_conditioned(model):
    spec, weights, x, _ = gradient_case(model)
    margin = reference.relu_margin(spec, weights, x)
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


def test_same_seed_same_initial_weights(backend):
    spec = nin.get_spec("nin_tiny")
    for method in nin.weights.INITIALIZERS:
        exported = backend.export_state(backend.build(spec, seed=3, init=method))
        for name, want in nin.init_weights(spec, seed=3, method=method).items():
            np.testing.assert_array_equal(exported[name], want, err_msg=f"{method} {name}")


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
    adapter = backend_or_skip(backend_name)
    if not adapter.gpu_available():
        pytest.skip(f"no GPU visible to {backend_name}")
    spec = nin.get_spec(model)
    x, weights, ref_logits, ref_acts = reference_forward(spec)
    net = adapter.build(spec, seed=0, device="gpu")
    adapter.load_state(net, weights)
    acts = adapter.intermediates(net, x)
    for name, want in ref_acts.items():
        err = _rel(acts[name], want)
        assert err <= FORWARD_RTOL, f"{backend_name}/{model}/gpu {name}: max|Δ| = {err:.2e}·max|ref|"


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


def _edge_features(spec: nin.NiNSpec) -> set[str]:
    """Which pooling edge cases a spec's forward pass at its input size meets (hand rules)."""
    found = set()
    sizes = nin.output_shapes(spec)
    previous = spec.input_size
    for name, layer in spec.named_layers():
        if isinstance(layer, nin.MaxPool | nin.AvgPool):
            kind = "max" if isinstance(layer, nin.MaxPool) else "avg"
            for n, k, s, p, out in zip(
                previous, layer.kernel, layer.stride, layer.padding, sizes[name][1:], strict=True
            ):
                last_end = (out - 1) * s - p + k
                if p > 0:
                    found.add(f"{kind}_padded")
                if last_end > n + p:
                    found.add(f"{kind}_past_padding")  # a partial ceil-mode window; for avg a clipped divisor
        if name in sizes and len(sizes[name]) > 1:
            previous = sizes[name][1:]
    return found


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_meet_every_pooling_rule(case):
    assert _edge_features(EDGE_CASES[case]) == {"max_padded", "max_past_padding", "avg_padded", "avg_past_padding"}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_gradients_at_pooling_edges_match_reference(backend, case):
    require(backend, "loss_and_grads")
    spec = EDGE_CASES[case]
    weights = random_weights(spec, seed=2)
    margin, seed = max((reference.relu_margin(spec, weights, batch(spec, 2, s)), s) for s in range(8))
    assert margin >= MIN_RELU_MARGIN, f"{case}: every input seed sits {margin:.1e} from a ReLU kink"
    x, labels = batch(spec, 2, seed), np.array([0, 2])
    net = backend.build(spec)
    backend.load_state(net, weights)
    want_loss, want = reference.loss_and_grads(spec, weights, x, labels)
    loss, grads = backend.loss_and_grads(net, x, labels)
    assert abs(loss - want_loss) <= 1e-5 * max(1.0, abs(want_loss)), f"{case}: loss {loss} but reference {want_loss}"
    for name, g in want.items():
        err = _rel(grads[name], g)
        assert err <= GRAD_RTOL, f"{case} d{name}: max|Δ| = {err:.2e}·max|ref|, allowed {GRAD_RTOL:.0e}"


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
