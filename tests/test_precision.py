"""Mixed precision: ``build(spec, precision="bf16")`` for the backends that have it (torch:
``torch.autocast``; jax: the Flax modules' ``dtype``), float32 parameters and updates with
bfloat16 arithmetic, against the NumPy oracle at the bf16 bounds derived in
``nin.conformance`` (forward 4·√L·u, gradients and SGD updates 8·√(2L)·u, u = 2⁻⁸); every
other backend and value refused with a clear error.  ``nin conformance --precision bf16``
runs the same checks (``nin.checks``).

Parametrized by backend (and model, device), as the conformance suite; ``NIN_BACKENDS`` selects.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip, batch, gpu_backend_or_skip, selected_backends

import nin
from nin.checks import (
    BF16_UNIT,
    check_gradients,
    check_layers,
    check_logits,
    check_sgd_steps,
    forward_case,
    forward_rtol,
    grad_rtol,
    gradient_case,
    min_relu_margin,
    sgd_case,
)
from nin.frameworks import backend_precisions, check_precision, list_runtimes
from nin.train import Recipe, spec_for

BF16 = [b for b in selected_backends() if "bf16" in backend_precisions(b)]
FLOAT32_ONLY = [b for b in selected_backends() if "bf16" not in backend_precisions(b)]
DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]


def _native_param_dtypes(backend_name: str, trainer) -> set[str]:
    """The dtypes the framework itself holds the parameters and momentum buffers in."""
    if backend_name == "torch":
        params = list(trainer.model.parameters())
        buffers = [trainer.optimizer.state[p]["momentum_buffer"] for p in params]
        return {str(t.dtype).removeprefix("torch.") for t in params + buffers}
    import jax

    return {str(leaf.dtype) for leaf in jax.tree.leaves((trainer.model.params, trainer._opt_state))}


def _bf16_adapter(backend_name: str, device: str):
    return gpu_backend_or_skip(backend_name) if device == "gpu" else backend_or_skip(backend_name)


def test_bf16_bounds_as_derived():
    """nin_tiny has L = 9 convolutions: forward 4·√9·u = 12u, gradients 8·√18·u ≈ 34u."""
    spec = nin.get_spec("nin_tiny")
    assert forward_rtol(spec, "bf16") == pytest.approx(12 * BF16_UNIT)
    assert grad_rtol(spec, "bf16") == pytest.approx(8 * 18**0.5 * BF16_UNIT)


@pytest.mark.parametrize("device", DEVICES, ids=["cpu", "gpu"])
@pytest.mark.parametrize("model", ["nin_tiny", "nin_mnist"])
@pytest.mark.parametrize("backend_name", BF16)
def test_bf16_forward_matches_oracle(backend_name, model, device):
    """Every layer and the logits within 4·√L·u of the oracle's; and not the float32 logits
    bit for bit (a "bf16" model that ran in float32 would pass the oracle and fail here)."""
    adapter = _bf16_adapter(backend_name, device)
    spec = nin.get_spec(model)
    case = forward_case(spec)
    net = adapter.build(spec, device=device, precision="bf16")
    adapter.load_state(net, case.weights)
    what = f"{backend_name}/{model}/{device} bf16"
    for check in (
        check_layers(adapter, net, case, forward_rtol(spec, "bf16")),
        check_logits(adapter, net, case, forward_rtol(spec, "bf16")),
    ):
        assert check.ok, f"{what}: {check.message}"
    float32 = adapter.build(spec, device=device)
    adapter.load_state(float32, case.weights)
    assert not np.array_equal(adapter.forward(net, case.x), adapter.forward(float32, case.x)), (
        f"{what}: the logits equal float32's bit for bit"
    )


@pytest.mark.parametrize("device", DEVICES, ids=["cpu", "gpu"])
@pytest.mark.parametrize("backend_name", BF16)
def test_bf16_gradients_match_oracle(backend_name, device):
    """nin_tiny's gradient case, whose ReLU margin (5.5e-3) exceeds one bfloat16 unit: every
    gradient within 8·√(2L)·u of the oracle's."""
    adapter = _bf16_adapter(backend_name, device)
    case = gradient_case("nin_tiny")
    assert case.margin >= min_relu_margin("bf16"), f"nin_tiny's gradient case sits {case.margin:.1e} from a ReLU kink"
    net = adapter.build(case.spec, seed=1, device=device, precision="bf16")
    adapter.load_state(net, case.weights)
    check = check_gradients(adapter, net, case, grad_rtol(case.spec, "bf16"), forward_rtol(case.spec, "bf16"))
    assert check.ok, f"{backend_name}/{device} bf16: {check.message}"


@pytest.mark.parametrize("device", DEVICES, ids=["cpu", "gpu"])
@pytest.mark.parametrize("backend_name", BF16)
def test_bf16_k_steps_match_sgd_reference(backend_name, device):
    """``nin.checks.sgd_case`` in bf16: each step's loss within the forward bound, each
    tensor's update over K steps within the gradient bound of the oracle's update."""
    adapter = _bf16_adapter(backend_name, device)
    case = sgd_case()
    model = adapter.build(case.spec, case.recipe.seed, device=device, init=case.recipe.init, precision="bf16")
    check = check_sgd_steps(adapter.Trainer(model, case.recipe), case, "bf16")
    assert check.ok, f"{backend_name}/{device} bf16: {check.message}"


@pytest.mark.parametrize("backend_name", BF16)
def test_bf16_training_step_lowers_the_loss_in_float32_parameters(backend_name):
    adapter = backend_or_skip(backend_name)
    recipe = Recipe()
    spec = spec_for(recipe, nin.get_spec("nin_tiny"))
    trainer = adapter.Trainer(adapter.build(spec, seed=0, precision="bf16"), recipe)
    x, y = batch(spec, 4), np.arange(4) % spec.num_classes
    before, _ = trainer.evaluate(x, y)
    trainer.step(x, y, 0.1)
    after, _ = trainer.evaluate(x, y)
    # measured 9.198 → 9.157 (summed over 4) in both backends; bf16 moves the loss by 4e-5, a
    # thousandth of that drop
    assert after < before, f"{backend_name} bf16: summed loss {before:.4f} before one step, {after:.4f} after"
    assert _native_param_dtypes(backend_name, trainer) == {"float32"}


@pytest.mark.parametrize("backend_name", selected_backends())
def test_unknown_precision_gets_clear_error(backend_name):
    adapter = backend_or_skip(backend_name)
    with pytest.raises(nin.UnknownNameError, match=r"unknown precision 'fp16'; known precisions: float32, bf16"):
        adapter.build(nin.get_spec("nin_tiny"), precision="fp16")


@pytest.mark.parametrize("backend_name", FLOAT32_ONLY)
def test_bf16_elsewhere_gets_clear_error(backend_name):
    adapter = backend_or_skip(backend_name)
    having = " and ".join(b for b in list_runtimes() if "bf16" in backend_precisions(b))
    with pytest.raises(nin.UnknownNameError, match=rf"bf16 is available for {having} only; the {backend_name}"):
        adapter.build(nin.get_spec("nin_tiny"), precision="bf16")


@pytest.mark.parametrize("backend_name", list_runtimes())
def test_check_precision_without_a_framework(backend_name):
    assert check_precision(backend_name, "float32") == "float32"
    if "bf16" in backend_precisions(backend_name):
        assert check_precision(backend_name, "bf16") == "bf16"
    else:
        with pytest.raises(nin.UnknownNameError, match="use precision='float32'"):
            check_precision(backend_name, "bf16")
