"""The GPU half of the conformance promise: torch and JAX on CUDA against the NumPy oracle —
gradients and K SGD steps here; forward and every intermediate in
``tests/test_conformance.py::test_gpu_forward_matches_reference``.

Every case is marked ``gpu`` and skips with the reason where the framework sees no GPU (this
machine and CI have none); ``benchmarks/gpu_check.sh`` runs them on a GPU machine.  The
tolerances are the CPU suite's (``nin.conformance``): with TF32 off (torch) and
``Precision.HIGHEST`` (JAX) a GPU computes float32 products in float32, so the same bounds hold;
TF32 left on would miss them by about 1e-3 (10 mantissa bits).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_or_skip

import nin
from nin import reference
from nin.conformance import GRAD_RTOL, gradient_case, max_rel_error
from nin.train import NumpyTrainer, Recipe, get_trainer

pytestmark = pytest.mark.gpu

GPU_BACKENDS = ("torch", "jax")
MODELS = ("nin_tiny", "nin_cifar10", "nin_d2l", "nin3d")
K_RATES = (0.05, 0.1, 0.02, 0.08)  # a changing rate, as in tests/test_train_backends.py


def gpu_backend_or_skip(name: str):
    adapter = backend_or_skip(name)
    if not adapter.gpu_available():
        pytest.skip(f"no GPU visible to {name}")
    return adapter


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_gradients_match_reference(name, model):
    adapter = gpu_backend_or_skip(name)
    spec, weights, x, labels = gradient_case(model)
    ref_loss, ref_grads = reference.loss_and_grads(spec, weights, x, labels)
    net = adapter.build(spec, seed=1, device="gpu")
    adapter.load_state(net, weights)
    loss, grads = adapter.loss_and_grads(net, x, labels)
    assert loss == pytest.approx(ref_loss, rel=1e-5), f"{name}/{model}/gpu loss {loss}, oracle {ref_loss}"
    for tensor, want in ref_grads.items():
        err = max_rel_error(grads[tensor], want)
        assert err <= GRAD_RTOL, f"{name}/{model}/gpu ∂{tensor}: max|Δ| = {err:.2e}·max|ref|, allowed {GRAD_RTOL:.0e}"


@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_k_sgd_steps_match_reference(name):
    """K steps of the backend's own optimizer on the GPU end where the NumPy oracle's do
    (tolerances and their derivation: tests/test_train_backends.py)."""
    gpu_backend_or_skip(name)
    spec, recipe = nin.get_spec("nin_tiny"), Recipe(dropout=False)
    rng = np.random.default_rng(1)
    oracle = NumpyTrainer(spec, recipe)
    start = oracle.export_state()
    start["weights"] = {
        k: (0.1 * rng.standard_normal(w.shape)).astype(np.float32) if k.endswith(".bias") else w
        for k, w in start["weights"].items()
    }
    start["momentum"] = {
        k: (0.05 * rng.standard_normal(w.shape)).astype(np.float32) for k, w in start["weights"].items()
    }
    oracle.load_state(start)
    trainer = get_trainer(name, spec, recipe, device="gpu")
    trainer.load_state(start)
    for t, lr in enumerate(K_RATES):
        x = rng.standard_normal((8, spec.in_channels, *spec.input_size)).astype(np.float32)
        y = rng.integers(0, spec.num_classes, 8)
        want_loss, _ = oracle.step(x, y, lr)
        loss, _ = trainer.step(x, y, lr)
        assert loss == pytest.approx(want_loss, rel=1e-5), f"{name}/gpu step {t}: loss {loss}, oracle {want_loss}"
    got, want = trainer.export_state(), oracle.export_state()
    for kind, rtol in (("weights", 1e-4), ("momentum", 1e-3)):
        for tensor, w in want[kind].items():
            err = max_rel_error(got[kind][tensor], w)
            assert err <= rtol, f"{name}/gpu {kind} {tensor} after {len(K_RATES)} steps: max|Δ| = {err:.2e}·max|ref|"


def test_gpu_torch_keeps_tf32_off():
    """Building on the GPU turns TF32 off for float32 matmuls and convolutions (the host setting
    in frameworks/README.md); the bounds above depend on it."""
    adapter = gpu_backend_or_skip("torch")
    import torch

    adapter.build(nin.get_spec("nin_tiny"), device="gpu")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
