"""The GPU half of the conformance promise: torch and JAX on CUDA against the NumPy oracle —
gradients here; forward and every intermediate in
``tests/test_conformance.py::test_gpu_forward_matches_reference``; K SGD steps in
``tests/test_train_backends.py::test_k_steps_match_sgd_reference[…-gpu]``.

Every case is marked ``gpu`` and skips with the reason where the framework sees no GPU (this
machine and CI have none); ``pytest -m gpu`` runs them where pytest and a GPU meet, and
``benchmarks/gpu_check.sh`` runs the same properties through ``nin conformance --device gpu`` on
a GPU machine without pytest.  The
tolerances are the CPU suite's (``nin.conformance``): with TF32 off (torch) and
``Precision.HIGHEST`` (JAX) a GPU computes float32 products in float32, so the same bounds hold;
TF32 left on would miss them by about 1e-3 (10 mantissa bits).
"""

from __future__ import annotations

import pytest
from conftest import backend_or_skip

import nin
from nin import reference
from nin.conformance import GRAD_RTOL, gradient_case, max_rel_error
from nin.frameworks import gpu_probes

pytestmark = pytest.mark.gpu

GPU_BACKENDS = gpu_probes()
MODELS = ("nin_tiny", "nin_cifar10", "nin_d2l", "nin3d")


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


def test_gpu_torch_keeps_tf32_off():
    """Building on the GPU turns TF32 off for float32 matmuls and convolutions (the host setting
    in frameworks/README.md); the bounds above depend on it."""
    adapter = gpu_backend_or_skip("torch")
    import torch

    adapter.build(nin.get_spec("nin_tiny"), device="gpu")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
