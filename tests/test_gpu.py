"""The GPU half of the conformance promise: torch and JAX on CUDA against the NumPy oracle —
gradients here; forward and every intermediate in
``tests/test_conformance.py::test_gpu_forward_matches_reference``; K SGD steps in
``tests/test_train_backends.py::test_k_steps_match_sgd_reference[…-gpu]``; bf16 in
``tests/test_precision.py``.  The same checks run without pytest as
``python -m nin conformance --device gpu`` (what ``benchmarks/gpu_check.sh`` runs on a GPU
machine, which has no pytest).

Every case is marked ``gpu`` and skips with the reason where the framework sees no GPU (this
machine and CI have none); ``NIN_REQUIRE_GPU=torch,jax`` turns that skip into a failure;
``pytest -m gpu`` runs them where pytest and a GPU meet.  The
tolerances are the CPU suite's (``nin.conformance``): with TF32 off (torch) and
``Precision.HIGHEST`` (JAX) a GPU computes float32 products in float32, so the same bounds hold;
TF32 left on would miss them by about 1e-3 (10 mantissa bits).
"""

from __future__ import annotations

import pytest
from conftest import gpu_backend_or_skip

import nin
from nin.checks import check_gradients, gradient_case
from nin.frameworks import gpu_probes

pytestmark = pytest.mark.gpu

GPU_BACKENDS = gpu_probes()
MODELS = ("nin_tiny", "nin_cifar10", "nin_d2l", "nin3d")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", GPU_BACKENDS)
def test_gpu_gradients_match_reference(name, model):
    adapter = gpu_backend_or_skip(name)
    case = gradient_case(model)
    net = adapter.build(case.spec, seed=1, device="gpu")
    adapter.load_state(net, case.weights)
    check = check_gradients(adapter, net, case)
    assert check.ok, f"{name}/{model}/gpu: {check.message}"


def test_gpu_torch_keeps_tf32_off():
    """Building on the GPU turns TF32 off for float32 matmuls and convolutions (the host setting
    in frameworks/README.md); the bounds above depend on it.  TF32 is turned on first, so the
    test fails whatever ran before it if ``build`` leaves it on."""
    adapter = gpu_backend_or_skip("torch")
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        adapter.build(nin.get_spec("nin_tiny"), device="gpu")
        on = [name for name, flag in (("matmul", torch.backends.cuda.matmul.allow_tf32),
                                      ("cudnn", torch.backends.cudnn.allow_tf32)) if flag]  # fmt: skip
        assert not on, f"TF32 still on for {', '.join(on)} after build(device='gpu')"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
