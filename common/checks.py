"""The conformance properties, one function each: parameter count, every layer's shape and
value, logits, gradients and K SGD steps of a backend against the NumPy oracle.

Each ``check_*`` function returns a ``Check``: the property, the figure measured, the figure
allowed, the verdict ("ok" or "mismatch") and one line saying it (``got X, but should be
Y``).  ``nin compare``, ``nin conformance`` and the test suite all call these functions, so a
command cannot say ok where a test would fail.  Shapes are compared exactly, before values:
an array of the wrong shape is a mismatch, never broadcast.

The oracle's side of every comparison is a case: ``forward_case`` (random weights with
non-zero biases and a batch, with the oracle's logits and every layer's output),
``gradient_case`` (a zoo model at its smallest input, away from ReLU kinks) and ``sgd_case``
(K steps of ``nin.train.sgd_reference`` from a state with non-zero biases and momentum).
The tolerances, and why they are what they are, are in ``nin.conformance``.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import reference
from .shapes import min_input_size, param_count
from .spec import Linear, NiNSpec
from .weights import Weights, init_weights
from .zoo import get_spec

FORWARD_RTOL = 1e-4
GRAD_RTOL = 1e-3
LOSS_RTOL = 1e-5
WEIGHT_RTOL = 1e-4
MOMENTUM_RTOL = 1e-3
MIN_RELU_MARGIN = 5e-7
BF16_UNIT = 2.0**-8  # bfloat16 keeps 8 significant bits
MIN_BF16_RELU_MARGIN = BF16_UNIT
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
SGD_MODEL = "nin_tiny"
SGD_RATES = (0.05, 0.1, 0.02, 0.08)  # a changing rate: a buffer kept as −lr·b would show it
SGD_BATCH = 8


# -- verdicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One property's verdict: ``figure`` measured against ``allowed`` (a count that must be
    equal, or a relative error that must not exceed it), and ``message``, one line saying
    what was got and what it should be."""

    property: str
    figure: float
    allowed: float
    ok: bool
    message: str

    @property
    def verdict(self) -> str:
        return "ok" if self.ok else "mismatch"

    def to_json(self) -> dict[str, Any]:
        figure, allowed = (v if math.isfinite(v) else str(v) for v in (float(self.figure), float(self.allowed)))
        return {"property": self.property, "figure": figure, "allowed": allowed, "verdict": self.verdict,
                "message": self.message}  # fmt: skip


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max|got − want| / max|want|, for arrays of the same shape (a ``ValueError`` naming both
    shapes otherwise: a wrong shape must not be broadcast into agreement)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise ValueError(f"got shape {got.shape}, but should be {want.shape}")
    return float(np.max(np.abs(got - want), initial=0.0) / max(float(np.max(np.abs(want), initial=0.0)), 1e-30))


def _worst(what: str, errors: dict[str, float], rtol: float, unit: str = "max|ref|") -> Check:
    """The verdict on per-tensor relative errors: the worst one against ``rtol`` (NaN fails)."""
    name = max(errors, key=lambda k: np.inf if math.isnan(errors[k]) else errors[k])
    err = errors[name]
    where = "" if name == what else f"{name}: "
    if err <= rtol:
        return Check(what, err, rtol, True, f"{'worst ' if where else ''}{where}max|Δ| = {err:.1e}·{unit} ≤ {rtol:.0e}")
    return Check(what, err, rtol, False, f"{where}got max|Δ| = {err:.1e}·{unit}, but should be ≤ {rtol:.0e}")


# -- the oracle's cases --------------------------------------------------------------------------


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


@dataclass(frozen=True, eq=False)
class ForwardCase:
    """Weights, a batch, and the oracle's logits and layer outputs (float64) for them."""

    spec: NiNSpec
    weights: Weights
    x: np.ndarray
    logits: np.ndarray
    acts: dict[str, np.ndarray]

    @classmethod
    def of(cls, spec: NiNSpec, weights: Weights, x: np.ndarray) -> ForwardCase:
        """The case of these weights and this batch: the oracle runs them."""
        logits, acts = reference.forward(spec, weights, x)
        return cls(spec, weights, x, logits, acts)


@functools.lru_cache(maxsize=16)
def forward_case(spec: NiNSpec, seed: int = 0, n: int = 2) -> ForwardCase:
    """``random_weights(spec, seed)`` on ``sample_batch(spec, n, seed)`` through the oracle
    (computed once per spec, seed and batch size)."""
    return ForwardCase.of(spec, random_weights(spec, seed), sample_batch(spec, n, seed))


@dataclass(frozen=True, eq=False)
class GradientCase:
    """Weights, a batch with labels, the oracle's loss and gradients, and the batch's ReLU
    margin (``nin.reference.relu_margin``)."""

    spec: NiNSpec
    weights: Weights
    x: np.ndarray
    labels: np.ndarray
    loss: float
    grads: dict[str, np.ndarray]
    margin: float

    @classmethod
    def of(cls, spec: NiNSpec, weights: Weights, x: np.ndarray, labels: np.ndarray) -> GradientCase:
        """The case of these weights, batch and labels: the oracle's loss, gradients and margin."""
        loss, grads = reference.loss_and_grads(spec, weights, x, labels)
        return cls(spec, weights, x, np.asarray(labels), loss, grads, reference.relu_margin(spec, weights, x))


@functools.lru_cache(maxsize=16)
def gradient_case(model: str) -> GradientCase:
    """The zoo model at its smallest valid input, where a float64 backward pass is cheap, at
    the input seed (``GRAD_SEEDS``) farthest from ReLU kinks; ``random_weights(spec, 1)``."""
    spec = get_spec(model, input_size=min_input_size(get_spec(model)))
    weights = random_weights(spec, seed=1)
    x = sample_batch(spec, GRAD_BATCH, seed=GRAD_SEEDS.get(model, 0))
    return GradientCase.of(spec, weights, x, np.arange(GRAD_BATCH) % spec.num_classes)


@dataclass(frozen=True, eq=False)
class SgdCase:
    """K steps of the oracle's SGD: the recipe, the start state, the batches and rates, the
    oracle's (loss, correct) per step and its state after the last."""

    spec: NiNSpec
    recipe: Any  # nin.train.Recipe
    start: dict[str, Weights]
    batches: list[tuple[np.ndarray, np.ndarray]]
    rates: tuple[float, ...]
    results: list[tuple[float, int]]
    end: dict[str, Weights] = field(repr=False)


@functools.lru_cache(maxsize=1)
def sgd_case() -> SgdCase:
    """``SGD_MODEL`` without dropout (μ 0.9, λ 5e-4: the default recipe), a start state with
    non-zero biases (so their weight decay counts) and non-zero momentum (so the first step
    already tests its convention), ``len(SGD_RATES)`` batches of ``SGD_BATCH``, stepped by
    ``nin.train.NumpyTrainer`` (``sgd_reference``)."""
    from .train import NumpyTrainer, Recipe

    recipe = Recipe(dropout=False)
    oracle = NumpyTrainer(get_spec(SGD_MODEL), recipe)
    rng = np.random.default_rng(1)
    weights = {
        name: (0.1 * rng.standard_normal(w.shape)).astype(np.float32) if name.endswith(".bias") else w
        for name, w in oracle.export_state()["weights"].items()
    }
    start = {
        "weights": weights,
        "momentum": {name: (0.05 * rng.standard_normal(w.shape)).astype(np.float32) for name, w in weights.items()},
    }
    oracle.load_state(start)
    data = np.random.default_rng(0)
    shape = (SGD_BATCH, oracle.spec.in_channels, *oracle.spec.input_size)
    batches = [
        (data.standard_normal(shape).astype(np.float32), data.integers(0, oracle.spec.num_classes, SGD_BATCH))
        for _ in SGD_RATES
    ]
    results = [oracle.step(x, y, lr) for (x, y), lr in zip(batches, SGD_RATES, strict=True)]
    return SgdCase(oracle.spec, recipe, start, batches, SGD_RATES, results, oracle.export_state())


# -- tolerances by precision ---------------------------------------------------------------------


def conv_depth(spec: NiNSpec) -> int:
    """The number of rounding stages a forward pass goes through: convolutions and the head."""
    return sum(len(block.convs) for block in spec.blocks()) + sum(isinstance(layer, Linear) for layer in spec.layers)


def forward_rtol(spec: NiNSpec, precision: str = "float32") -> float:
    """Layers and logits: ``FORWARD_RTOL`` in float32; 4·√L·u in bf16 (``nin.conformance``)."""
    return FORWARD_RTOL if precision == "float32" else 4 * math.sqrt(conv_depth(spec)) * BF16_UNIT


def grad_rtol(spec: NiNSpec, precision: str = "float32") -> float:
    """Gradients and SGD updates: ``GRAD_RTOL`` in float32; 8·√(2L)·u in bf16 (``nin.conformance``)."""
    return GRAD_RTOL if precision == "float32" else 8 * math.sqrt(2 * conv_depth(spec)) * BF16_UNIT


def min_relu_margin(precision: str = "float32") -> float:
    """The ReLU margin a gradient case needs for its gradients to be determined in ``precision``."""
    return MIN_RELU_MARGIN if precision == "float32" else MIN_BF16_RELU_MARGIN


# -- the properties ------------------------------------------------------------------------------


def check_param_count(adapter, model, spec: NiNSpec) -> Check:
    """The framework's own parameter count (``adapter.param_count``) against the spec's."""
    got, want = int(adapter.param_count(model)), param_count(spec)
    if got == want:
        return Check("params", got, want, True, f"{got:,} parameters, as the spec says")
    return Check("params", got, want, False, f"got {got:,} parameters, but should be {want:,} (the spec's)")


def check_layer_shapes(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> Check:
    """Layer names, their order and every layer's shape, exactly: ``got`` (a backend's
    ``intermediates``) against ``want`` (the oracle's, which sizes windows from the pooling
    rule itself, not from ``nin.shapes``)."""
    if list(got) != list(want):
        n = len(set(got) ^ set(want)) or 1
        return Check("layer shapes", n, 0, False, f"got layers {list(got)}, but should be {list(want)}")
    wrong = [name for name in want if np.shape(got[name]) != np.shape(want[name])]
    if wrong:
        name = wrong[0]
        more = f" (and {len(wrong) - 1} more layers)" if len(wrong) > 1 else ""
        message = f"{name}: got shape {np.shape(got[name])}, but should be {np.shape(want[name])}{more}"
        return Check("layer shapes", len(wrong), 0, False, message)
    return Check("layer shapes", 0, 0, True, f"all {len(want)} layers have the oracle's shapes")


def check_layers(adapter, model, case: ForwardCase, rtol: float = FORWARD_RTOL) -> Check:
    """Every layer's output (``adapter.intermediates``) against the oracle's: shapes exactly
    first (a mismatch returns ``check_layer_shapes``'s verdict), then max|Δ| ≤
    ``rtol``·max|ref| per layer."""
    acts = adapter.intermediates(model, case.x)
    shapes = check_layer_shapes(acts, case.acts)
    if not shapes.ok:
        return shapes
    return _worst("layers", {name: max_rel_error(acts[name], want) for name, want in case.acts.items()}, rtol)


def check_logits(adapter, model, case: ForwardCase, rtol: float = FORWARD_RTOL) -> Check:
    """``adapter.forward``: float32 logits of the oracle's shape, max|Δ| ≤ ``rtol``·max|ref|."""
    logits = np.asarray(adapter.forward(model, case.x))
    if logits.shape != case.logits.shape or logits.dtype != np.float32:
        got = f"{logits.dtype} {logits.shape}"
        return Check("logits", math.inf, rtol, False, f"got {got} logits, but should be float32 {case.logits.shape}")
    return _worst("logits", {"logits": max_rel_error(logits, case.logits)}, rtol)


def check_gradients(adapter, model, case: GradientCase, rtol: float = GRAD_RTOL, loss_rtol: float = LOSS_RTOL) -> Check:
    """``adapter.loss_and_grads`` on a model holding ``case.weights``: the loss within
    ``loss_rtol``, the canonical gradient names, every shape exactly, then max|Δ| ≤
    ``rtol``·max|ref| per tensor."""
    loss, grads = adapter.loss_and_grads(model, case.x, case.labels)
    loss_err = abs(loss - case.loss) / max(1.0, abs(case.loss))
    if not loss_err <= loss_rtol:
        message = f"loss: got {loss:.7g}, but should be {case.loss:.7g} (|Δ| ≤ {loss_rtol:.0e}·max(1, |loss|))"
        return Check("gradients", loss_err, loss_rtol, False, message)
    shapes = check_layer_shapes(grads, case.grads)
    if not shapes.ok:
        return Check("gradients", math.inf, rtol, False, "gradient " + shapes.message.replace("layers", "tensors"))
    return _worst("gradients", {f"d{k}": max_rel_error(grads[k], g) for k, g in case.grads.items()}, rtol)


def check_sgd_steps(trainer, case: SgdCase, precision: str = "float32") -> Check:
    """K steps of ``trainer`` (a ``nin.train.Trainer`` built for ``case.spec``) from
    ``case.start`` against ``nin.train.sgd_reference``'s: each step's loss and correct count,
    then every tensor after the last step.  float32: the weights within ``WEIGHT_RTOL``·max|w|,
    the momentum buffers within ``MOMENTUM_RTOL``·max|b|; bf16: the losses within the forward
    tolerance and each tensor's update (w_K − w_0) within the gradient tolerance of the
    oracle's update (``nin.conformance``)."""
    spec, k = case.spec, len(case.rates)
    loss_rtol = LOSS_RTOL if precision == "float32" else forward_rtol(spec, precision)
    trainer.load_state(case.start)
    for t, ((x, y), lr, (want_loss, want_correct)) in enumerate(
        zip(case.batches, case.rates, case.results, strict=True)
    ):
        loss, correct = trainer.step(x, y, lr)
        err = abs(loss - want_loss) / max(1.0, abs(want_loss))
        if not err <= loss_rtol:
            message = f"step {t} loss: got {loss:.7g}, but should be {want_loss:.7g} (|Δ| ≤ {loss_rtol:.0e})"
            return Check("sgd steps", err, loss_rtol, False, message)
        if precision == "float32" and correct != want_correct:
            message = f"step {t}: got {correct} correct predictions, but should be {want_correct}"
            return Check("sgd steps", abs(correct - want_correct), 0, False, message)
    got = trainer.export_state()
    if precision == "float32":
        return check_state(got, case.end, f"max|oracle| after {k} steps")
    for kind in ("weights", "momentum"):
        shapes = check_layer_shapes(got[kind], case.end[kind])
        if not shapes.ok:
            return Check("sgd steps", math.inf, 0, False, f"{kind} " + shapes.message.replace("layers", "tensors"))
    updates = {
        f"update of {name}": max_rel_error(got["weights"][name] - case.start["weights"][name], want - case.start["weights"][name])
        for name, want in case.end["weights"].items()
    }  # fmt: skip
    return _worst("sgd steps", updates, grad_rtol(spec, precision), f"max|oracle's update| over {k} steps")


def check_state(got: dict, want: dict, relative_to: str = "max|oracle|") -> Check:
    """A trainer's state (``{"weights": ..., "momentum": ...}``) against the oracle's, per
    tensor: the same names and shapes, then the weights within ``WEIGHT_RTOL``·max|w| and the
    momentum buffers within ``MOMENTUM_RTOL``·max|b| of each tensor's own oracle value."""
    for kind in ("weights", "momentum"):
        shapes = check_layer_shapes(got[kind], want[kind])
        if not shapes.ok:
            return Check("sgd steps", math.inf, 0, False, f"{kind} " + shapes.message.replace("layers", "tensors"))
    checks = [
        _worst(
            "sgd steps",
            {f"{kind} {name}": max_rel_error(got[kind][name], value) for name, value in want[kind].items()},
            rtol,
            relative_to,
        )
        for kind, rtol in (("weights", WEIGHT_RTOL), ("momentum", MOMENTUM_RTOL))
    ]
    return min(checks, key=lambda c: (c.ok, -c.figure / c.allowed))


# -- GPUs ----------------------------------------------------------------------------------------


def cuda_driver_problem() -> str | None:
    """Why the NVIDIA driver offers no GPU to this process (no ``libcuda``, ``cuInit`` failing,
    no device), found with ``ctypes`` and no framework; ``None`` when it offers at least one."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 cannot be loaded (is this a machine with an NVIDIA GPU and its driver?)"
    status = cuda.cuInit(0)
    if status != 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
        return f"the NVIDIA driver is installed but cuInit failed with CUDA error {status}{hint}"
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the NVIDIA driver is installed but reports no GPU device"
    return None


def gpu_missing_reason(backend: str) -> str | None:
    """Why ``backend`` sees no GPU — not installed, no driver, the framework's CUDA plugin
    missing, a CPU-only build — in one line; ``None`` when it sees one.  Each backend says
    what it knows in its own ``gpu_missing_reason`` (a contract name, next to ``gpu_available``)."""
    from .frameworks import get_backend, unavailable_reason

    reason = unavailable_reason(backend)
    if reason:
        return reason
    return get_backend(backend).gpu_missing_reason()


# -- a run's verdict -----------------------------------------------------------------------------


def run_failures(ran: list[tuple[str, str, str]], cannot_run: Mapping[str, str], required: set[str]) -> list[str]:
    """Why a run of ``nin compare`` or ``nin conformance`` fails, one line each (none: it
    passes).  ``ran``: (what, status, detail) of every row or cell that ran, status "ok",
    "mismatch" or "error"; ``cannot_run``: backend → why it could not run (not installed, or
    no GPU); ``required``: the backends the caller named, which must have run.  A run that
    checked nothing fails too: it is not a pass."""
    failures = [f"{what}: {status}: {detail}" for what, status, detail in ran if status != "ok"]
    failures += [f"{name} is required but cannot run: {cannot_run[name]}" for name in cannot_run if name in required]
    if not ran:
        why = f"none of {', '.join(cannot_run)} could run" if cannot_run else "no backend or model was selected"
        failures.append(f"nothing was checked: {why}")
    return failures
