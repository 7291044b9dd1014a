"""The conformance matrix behind ``nin conformance``: every backend × model against the spec
and the NumPy oracle.  The test suite (tests/test_conformance.py) asserts the same checks one
test id per case; this module runs them as a report.

Tolerances, against the float64 oracle, for float32 on CPU (and on GPU with TF32 off):

* forward: max|Δ| ≤ 1e-4 · max|ref| for every layer.  float32 rounding is u = 6e-8; a
  convolution sums K = C·k² products (up to 9,216 in the zoo), so its typical relative error
  is about √K·u ≈ 6e-6, and the deepest zoo model stacks 42 convolutions: √42·6e-6 ≈ 4e-5.
* gradients: max|Δ| ≤ 1e-3 · max|ref| per tensor: the backward pass also sums over the batch
  and every output position, starting from a float32 softmax.  The bugs this catches (a wrong
  pooling divisor, a transposed kernel, a mis-ordered flatten) give errors of order 1.
  ReLU is not differentiable at 0: a pre-activation within float32 rounding of 0 may be gated
  either way by a correct backend (seen: 4.6e-9 of its terms' magnitude in nin_d2l_3x1x1,
  giving a 3e-3 gradient difference).  So each gradient case uses the input seed, of 0–15,
  whose smallest ReLU margin (``nin.reference.relu_margin``) is largest; every chosen case
  has a margin ≥ ``MIN_RELU_MARGIN`` = 5e-7 ≈ 8 float32 units, checked by the test suite.

Weights (``random_weights``): He-normal weights and non-zero random biases.  Every initialiser
starts biases at zero, so with its weights a backend that dropped or swapped biases on
``load_state`` would still agree with the oracle.
"""

from __future__ import annotations

import time

import numpy as np

from .shapes import min_input_size, output_shapes, param_count
from .spec import NiNSpec
from .tables import markdown_table, text_table
from .weights import Weights, init_weights
from .zoo import get_spec, list_models

FORWARD_RTOL = 1e-4
GRAD_RTOL = 1e-3
MIN_RELU_MARGIN = 5e-7
GRAD_BATCH = 2
# input seed per model for gradient cases, the best ReLU margin of seeds 0–15
GRAD_SEEDS = {  # and the ReLU margin it gives (random_weights(spec, seed=1))
    "nin_d2l": 9,  # 2.8e-06
    "nin_d2l_1x1": 3,  # 2.7e-06
    "nin_d2l_3x1x1": 15,  # 1.4e-06
    "nin_d2l_3x3": 9,  # 1.4e-06
    "nin_d2l_fc": 9,  # 2.8e-06
    "nin_depth11": 14,  # 4.3e-06
    "nin_depth16": 15,  # 3.2e-06
    "nin_depth19": 12,  # 5.6e-06
    "nin_cifar10": 11,  # 1.3e-05
    "nin_imagenet": 5,  # 2.4e-06
    "nin_mnist": 3,  # 1.0e-04
    "nin_tiny": 4,  # 5.5e-03
    "nin3d": 9,  # 2.5e-04
}


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max|got − want| / max|want|."""
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / max(float(np.max(np.abs(want))), 1e-30))


def random_weights(spec: NiNSpec, seed: int = 0, bias_std: float = 0.1) -> Weights:
    """Seeded canonical weights for conformance: He-normal weights (``init_weights(...,
    "kaiming")``) and every bias, the head's included, drawn from N(0, ``bias_std``²), so that
    a bias lost or swapped on the way into a backend shows in its output."""
    weights = init_weights(spec, seed, method="kaiming")
    rng = np.random.default_rng([seed, 1])
    for name, value in weights.items():
        if name.endswith(".bias"):
            weights[name] = rng.normal(0.0, bias_std, value.shape).astype(np.float32)
    return weights


def sample_batch(spec: NiNSpec, n: int = 2, seed: int = 0) -> np.ndarray:
    """A reproducible NCHW float32 batch, values like normalised images."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, spec.in_channels, *spec.input_size)).astype(np.float32)


def gradient_case(model: str) -> tuple[NiNSpec, dict, np.ndarray, np.ndarray]:
    """(spec, weights, x, labels) for gradient conformance: the model at its smallest valid
    input, where a float64 backward pass is cheap, away from ReLU kinks (see above)."""
    spec = get_spec(model, input_size=min_input_size(get_spec(model)))
    x = sample_batch(spec, GRAD_BATCH, seed=GRAD_SEEDS.get(model, 0))
    labels = np.arange(GRAD_BATCH) % spec.num_classes
    return spec, random_weights(spec, seed=1), x, labels


def check_case(adapter, model: str, trains: bool = True) -> dict:
    """Shapes, parameter count, forward error and (where the backend ``trains``) gradient
    error of one backend on one model."""
    from . import reference

    spec = get_spec(model)
    record: dict = {"model": model}
    start = time.perf_counter()
    net = adapter.build(spec, seed=0)
    weights = random_weights(spec, seed=0)
    adapter.load_state(net, weights)
    record["build_s"] = time.perf_counter() - start
    record["params"] = adapter.param_count(net)
    record["params_ok"] = record["params"] == param_count(spec)

    x = sample_batch(spec)
    ref_logits, ref_acts = reference.forward(spec, weights, x)
    acts = adapter.intermediates(net, x)
    want = output_shapes(spec)
    record["shapes_ok"] = list(acts) == list(want) and all(
        tuple(acts[k].shape) == (len(x), *v) for k, v in want.items()
    )
    errors = [max_rel_error(acts[k], v) for k, v in ref_acts.items() if k in acts]
    errors.append(max_rel_error(adapter.forward(net, x), ref_logits))
    record["forward_err"] = max(errors)

    record["grad_err"] = None  # an inference-only runtime (onnxruntime) has no gradients to check
    if trains:
        small, small_weights, xs, labels = gradient_case(model)
        _, ref_grads = reference.loss_and_grads(small, small_weights, xs, labels)
        small_net = adapter.build(small, seed=1)
        adapter.load_state(small_net, small_weights)
        _, grads = adapter.loss_and_grads(small_net, xs, labels)
        record["grad_err"] = max(max_rel_error(grads[k], g) for k, g in ref_grads.items())
    record["passed"] = bool(
        record["params_ok"]
        and record["shapes_ok"]
        and record["forward_err"] <= FORWARD_RTOL
        and (not trains or record["grad_err"] <= GRAD_RTOL)
    )
    return record


def run_matrix(backends: list[str] | None = None, models: list[str] | None = None) -> dict:
    from .errors import NinError
    from .frameworks import backend_trains, get_backend, list_runtimes

    backends = backends or list_runtimes()
    models = models or list_models()
    for m in models:
        get_spec(m)  # unknown names fail here, before any framework is imported
    cells, unavailable = [], {}
    for name in backends:
        try:
            adapter = get_backend(name)
        except NinError as e:
            unavailable[name] = str(e)
            continue
        version = adapter.framework_version()
        for model in models:
            try:
                record = check_case(adapter, model, backend_trains(name))
            except Exception as e:  # a crash is a failed cell, reported, not a stopped matrix
                record = {"model": model, "passed": False, "error": f"{type(e).__name__}: {e}"}
            cells.append({"backend": name, "framework": version, **record})
    passed = bool(cells) and all(c["passed"] for c in cells) and not (set(backends) & set(unavailable))
    return {
        "forward_rtol": FORWARD_RTOL,
        "grad_rtol": GRAD_RTOL,
        "cells": cells,
        "unavailable": unavailable,
        "passed": passed,
    }


def _rows(result: dict) -> list[tuple]:
    rows = []
    for c in result["cells"]:
        if "error" in c:
            rows.append((c["backend"], c["model"], "-", "-", "-", "-", "FAIL " + c["error"][:60]))
            continue
        rows.append(
            (
                c["backend"],
                c["model"],
                "ok" if c["shapes_ok"] else "WRONG",
                f"{c['params']:,}" + ("" if c["params_ok"] else " (WRONG)"),
                f"{c['forward_err']:.1e}",
                "n/a (inference only)" if c["grad_err"] is None else f"{c['grad_err']:.1e}",
                "pass" if c["passed"] else "FAIL",
            )
        )
    for name, why in result["unavailable"].items():
        rows.append((name, "-", "-", "-", "-", "-", "unavailable: " + why))
    return rows


HEADER = ("backend", "model", "shapes", "params", "fwd max|Δ|", "grad max|Δ|", "result")


def conformance_text(result: dict) -> str:
    n_pass = sum(c["passed"] for c in result["cells"])
    foot = (
        f"{n_pass}/{len(result['cells'])} cells pass (max|Δ| relative to max|reference|; allowed "
        f"{result['forward_rtol']:.0e} forward, {result['grad_rtol']:.0e} gradients)"
    )
    return text_table(HEADER, _rows(result), right=(3, 4, 5)) + "\n\n" + foot


def conformance_markdown(result: dict) -> str:
    return markdown_table(HEADER, _rows(result), right=(3, 4, 5))
