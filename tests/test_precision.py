"""Mixed precision: ``build(spec, precision="bf16")`` for the backends that have it (torch:
``torch.autocast``; jax: the Flax modules' ``dtype``), float32 parameters and updates with
bfloat16 arithmetic; every other backend and value refused with a clear error.

Parametrized by backend (and model, device), as the conformance suite; ``NIN_BACKENDS`` selects.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip, batch, selected_backends

import nin
from nin.conformance import max_rel_error
from nin.frameworks import backend_precisions, check_precision, list_runtimes
from nin.train import Recipe, spec_for

BF16 = [b for b in selected_backends() if "bf16" in backend_precisions(b)]
FLOAT32_ONLY = [b for b in selected_backends() if "bf16" not in backend_precisions(b)]

# bfloat16 keeps 8 significant bits: unit roundoff u = 2^-8 ≈ 3.9e-3.  Every layer rounds its
# inputs, weights and output to bfloat16 (about 3u each; the products accumulate in float32),
# and nin_tiny / nin_mnist have 7 to 10 such layers; independent roundings add up like a random
# walk, ~3u·√10 ≈ 0.04 of the largest logit, so 3e-2 (8u) is the bound.  Measured on batch 4:
# 2.4e-3 (torch) and 3.9e-3 (jax) on nin_tiny, 6.4e-3 and 4.6e-3 on nin_mnist.  A model not run
# as the float32 one (wrong layout, a missed layer) is off by order 1.
BF16_RTOL = 3e-2


def _native_param_dtypes(backend_name: str, trainer) -> set[str]:
    """The dtypes the framework itself holds the parameters and momentum buffers in."""
    if backend_name == "torch":
        params = list(trainer.model.parameters())
        buffers = [trainer.optimizer.state[p]["momentum_buffer"] for p in params]
        return {str(t.dtype).removeprefix("torch.") for t in params + buffers}
    import jax

    return {str(leaf.dtype) for leaf in jax.tree.leaves((trainer.model.params, trainer._opt_state))}


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)], ids=["cpu", "gpu"])
@pytest.mark.parametrize("model", ["nin_tiny", "nin_mnist"])
@pytest.mark.parametrize("backend_name", BF16)
def test_bf16_forward_agrees_with_float32(backend_name, model, device):
    adapter = backend_or_skip(backend_name)
    if device == "gpu" and not adapter.gpu_available():
        pytest.skip(f"no GPU visible to {backend_name}")
    spec = nin.get_spec(model)
    x = batch(spec, 4)
    want = adapter.forward(adapter.build(spec, device=device), x)
    got = adapter.forward(adapter.build(spec, device=device, precision="bf16"), x)
    assert got.dtype == np.float32, f"{backend_name}/{model}/{device} bf16: logits are {got.dtype}, not float32"
    err = max_rel_error(got, want)
    assert err <= BF16_RTOL, f"{backend_name}/{model}/{device} bf16: max|Δ| = {err:.2e}·max|float32 logits|"
    assert not np.array_equal(got, want), f"{backend_name}/{model}/{device}: bf16 logits equal float32 bit for bit"


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
