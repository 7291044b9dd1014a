"""Property-based conformance: random valid specs, every backend against the NumPy oracle.

Hypothesis draws specs between and around the zoo's: 2-D and 3-D, 1–3 NiN blocks (kernel 1–5,
stride 1–3, padding ≤ k//2, then 1–3 more 1×1 convolutions of width 1–8), each block
optionally followed by a max or average pool (kernel 1–4, stride 1–3, padding ≤ k//2, ceil mode
on or off) and a dropout layer, a global-average-pooling or fully connected head, and an input
at or a little above the spec's smallest valid size.  For each, a backend's intermediates,
logits and gradients must equal the oracle's within the suite's tolerances.

Two profiles (docs/conformance.md):

* ``test_random_specs_match_oracle`` runs in the default suite: a fixed, derandomized draw of
  ``FAST_EXAMPLES`` specs per backend, the same every run.
* ``test_random_specs_match_oracle_fuzz`` is marked ``fuzz`` and runs only when selected
  (``pytest -m fuzz``): ``NIN_FUZZ_EXAMPLES`` specs per backend (default 500), drawn afresh.

``NIN_FUZZ_LOG=FILE`` appends one JSON line per case checked (backend, spec, worst forward and
gradient error) — the numbers docs/conformance.md reports.

Every failure the fuzzer found is kept below as an explicit ``@example`` of both profiles.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import nin
from nin import reference
from nin.conformance import FORWARD_RTOL, GRAD_RTOL, MIN_RELU_MARGIN, random_weights, sample_batch
from nin.conformance import max_rel_error as _rel

FAST_EXAMPLES = 4
FUZZ_EXAMPLES = int(os.environ.get("NIN_FUZZ_EXAMPLES", "500"))
# the largest input a drawn spec may need, in elements per example: keeps a 3-D case cheap
MAX_INPUT_ELEMENTS = 4096
INPUT_SEEDS = 4  # input seeds tried for a gradient case, the best conditioned kept
MIN_SOFTMAX_SLACK = 1e-3  # 1 − p(label) per example: float32's ~6e-8 is then ≤ 6e-5 of it


@st.composite
def pools(draw, ndim: int) -> nin.MaxPool | nin.AvgPool:
    kernel = draw(st.integers(1, 4))
    make = draw(st.sampled_from([nin.max_pool, nin.avg_pool]))
    return make(
        kernel,
        draw(st.integers(1, 3)),
        draw(st.integers(0, kernel // 2)),
        ceil_mode=draw(st.booleans()),
        ndim=ndim,
    )


@st.composite
def random_specs(draw) -> nin.NiNSpec:
    """A valid spec at an input size it accepts (the issue's ranges; see the module docstring)."""
    ndim = draw(st.sampled_from([2, 3]))
    num_classes = draw(st.integers(2, 5))
    gap_head = draw(st.booleans())
    n_blocks = draw(st.integers(1, 3))
    layers: list = []
    for b in range(n_blocks):
        kernel = draw(st.integers(1, 5))
        widths = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))
        if gap_head and b == n_blocks - 1:
            widths[-1] = num_classes  # global average pooling gives one score per channel
        block = nin.nin_block(
            draw(st.integers(1, 8)),
            kernel,
            draw(st.integers(1, 3)),
            draw(st.integers(0, kernel // 2)),
            mlp=tuple(widths),
            ndim=ndim,
        )
        layers.append(block)
        if draw(st.booleans()):
            layers.append(draw(pools(ndim)))
        if draw(st.booleans()):
            layers.append(nin.Dropout(draw(st.sampled_from([0.1, 0.3, 0.5]))))
    layers.append(nin.GlobalAvgPool() if gap_head else nin.Linear(num_classes))
    in_channels = draw(st.integers(1, 3))
    probe = nin.NiNSpec("random", in_channels, (4096,) * ndim, num_classes, tuple(layers))
    low = nin.min_input_size(probe)
    size = tuple(n + draw(st.integers(0, 3)) for n in low)
    if math.prod(size) * in_channels > MAX_INPUT_ELEMENTS:
        # too big to be a cheap case: shrink every stride to 1 rather than reject the draw
        layers = [_unit_strides(layer) for layer in layers]
        probe = nin.NiNSpec("random", in_channels, (4096,) * ndim, num_classes, tuple(layers))
        size = tuple(n + draw(st.integers(0, 3)) for n in nin.min_input_size(probe))
    return nin.NiNSpec("random", in_channels, size, num_classes, tuple(layers))


def _unit_strides(layer):
    if isinstance(layer, nin.NiNBlock):
        return nin.NiNBlock(
            tuple(nin.Conv(c.out_channels, c.kernel, (1,) * len(c.kernel), c.padding) for c in layer.convs)
        )
    if isinstance(layer, nin.MaxPool | nin.AvgPool):
        return type(layer)(layer.kernel, (1,) * len(layer.kernel), layer.padding, layer.ceil_mode)
    return layer


def check_against_oracle(adapter, spec: nin.NiNSpec) -> None:
    """Intermediates, logits and (where well conditioned) gradients of ``adapter`` on ``spec``
    equal the oracle's; the message names the spec, the layer and the error."""
    note(repr(spec))
    weights = random_weights(spec, seed=3)
    net = adapter.build(spec)
    adapter.load_state(net, weights)
    x = sample_batch(spec, 2, seed=0)
    want_logits, want_acts = reference.forward(spec, weights, x)
    acts = adapter.intermediates(net, x)
    assert list(acts) == list(want_acts), f"{spec!r}: layers {list(acts)}, oracle {list(want_acts)}"
    for name, want in want_acts.items():
        assert acts[name].shape == want.shape, f"{spec!r} {name}: shape {acts[name].shape}, oracle {want.shape}"
        err = _rel(acts[name], want)
        assert err <= FORWARD_RTOL, f"{spec!r} {name}: max|Δ| = {err:.2e}·max|ref|, allowed {FORWARD_RTOL:.0e}"
    err = _rel(adapter.forward(net, x), want_logits)
    assert err <= FORWARD_RTOL, f"{spec!r} logits: max|Δ| = {err:.2e}·max|ref|, allowed {FORWARD_RTOL:.0e}"
    record = {"backend": adapter.__name__.rsplit(".", 1)[-1], "spec": repr(spec)}
    record["forward_err"] = max([err, *(_rel(acts[name], want) for name, want in want_acts.items())])
    record["grad_err"] = None
    try:
        if hasattr(adapter, "loss_and_grads"):
            record["grad_err"] = _check_gradients(adapter, net, spec, weights)
    finally:
        if os.environ.get("NIN_FUZZ_LOG"):
            with open(os.environ["NIN_FUZZ_LOG"], "a") as f:
                f.write(json.dumps(record) + "\n")


def _check_gradients(adapter, net, spec: nin.NiNSpec, weights) -> float | None:
    """The worst gradient error, or None where every input tried is ill-conditioned."""
    # One label for the whole batch: with a label per example, a network whose output is the
    # same for both (every ReLU of a layer dead, which random specs reach) has a head.bias
    # gradient p − ½ that is a float32 cancellation of ±½ terms: 9.3e-4 relative error seen,
    # from rounding alone.  Label handling itself is tested on the zoo (different labels).
    labels = np.full(2, spec.num_classes - 1)
    seed = _well_conditioned_seed(spec, weights, labels)
    if seed is None:
        return None
    x = sample_batch(spec, 2, seed)
    want_loss, want_grads = reference.loss_and_grads(spec, weights, x, labels)
    loss, grads = adapter.loss_and_grads(net, x, labels)
    assert abs(loss - want_loss) <= 1e-5 * max(1.0, abs(want_loss)), f"{spec!r}: loss {loss}, oracle {want_loss}"
    assert list(grads) == list(want_grads), f"{spec!r}: gradient names {list(grads)}, canonical {list(want_grads)}"
    worst = 0.0
    for name, want in want_grads.items():
        err = _rel(grads[name], want)
        assert err <= GRAD_RTOL, f"{spec!r} d{name}: max|Δ| = {err:.2e}·max|ref|, allowed {GRAD_RTOL:.0e}"
        worst = max(worst, err)
    return worst


def _well_conditioned_seed(spec: nin.NiNSpec, weights, labels) -> int | None:
    """Of input seeds 0–3, the one farthest from a ReLU kink among those whose softmax is not
    saturated; None (noted) when there is none.

    Two places where a correct float32 backend may differ from the float64 oracle by more than
    the tolerance: a ReLU pre-activation within rounding of 0 (``MIN_RELU_MARGIN``,
    nin.conformance), and an example whose softmax gives its label p ≈ 1: its logit gradient
    p − 1 then has an absolute float32 error of ~6e-8, which is a large relative error of a
    tiny value — and the whole of a tensor's gradient where the other examples' ReLUs are dead
    (seen: 1 − p = 1.5e-6, 2.4e-3 relative error, identical in torch, JAX and TensorFlow).
    So every example must leave 1 − p(label) ≥ ``MIN_SOFTMAX_SLACK``."""
    best: tuple[float, int] | None = None
    for seed in range(INPUT_SEEDS):
        x = sample_batch(spec, 2, seed)
        logits, _ = reference.forward(spec, weights, x)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        slack = float((1.0 - p[np.arange(2), labels] / p.sum(axis=1)).min())
        margin = reference.relu_margin(spec, weights, x)
        if slack >= MIN_SOFTMAX_SLACK and margin >= MIN_RELU_MARGIN and (best is None or margin > best[0]):
            best = (margin, seed)
    if best is None:
        note(f"gradients not compared: no input seed of {INPUT_SEEDS} is away from ReLU kinks and softmax saturation")
        return None
    return best[1]


def with_regressions(test):
    """The specs the fuzzer once failed on, kept as explicit examples of every profile."""
    for spec in REGRESSIONS:
        test = example(spec=spec)(test)
    return test


# Each entry: a spec that once failed, and why (fixed at the cause).
REGRESSIONS: list[nin.NiNSpec] = [
    # torch: avg_pool3d rejected a 1×1×1 input under a 2×2×2 kernel with padding 1 ("input image
    # smaller than kernel size"); fixed by nin.frameworks.torch.model.PaddedAvgPool3d
    nin.NiNSpec(
        "random",
        1,
        (1, 1, 1),
        2,
        (
            nin.nin_block(1, 1, mlp=(1,), ndim=3),
            nin.nin_block(1, 1, mlp=(1,), ndim=3),
            nin.avg_pool(2, 1, 1, ndim=3),
            nin.Linear(2),
        ),
    ),
    # jax (and torch, TensorFlow alike): 2.4e-3 gradient error from a saturated softmax, the
    # only live example having 1 − p = 1.5e-6; a conditioning limit of float32, not a bug —
    # the gradient case is now chosen away from saturation (_well_conditioned_seed)
    nin.NiNSpec(
        "random",
        3,
        (2, 3, 2),
        2,
        (
            nin.NiNBlock(
                (
                    nin.Conv(1, (2, 2, 2), (1, 1, 1), (0, 0, 0)),
                    *[nin.Conv(c, (1, 1, 1), (1, 1, 1), (0, 0, 0)) for c in (3, 1)],
                )
            ),
            nin.Linear(2),
        ),
    ),
]

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=FAST_EXAMPLES, derandomize=True, **_COMMON)
@given(spec=random_specs())
@with_regressions
def test_random_specs_match_oracle(backend, spec):
    check_against_oracle(backend, spec)


@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, **_COMMON)
@given(spec=random_specs())
@with_regressions
def test_random_specs_match_oracle_fuzz(backend, spec):
    check_against_oracle(backend, spec)


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(spec=random_specs())
def test_random_specs_are_valid_and_cover_the_ranges(spec):
    """The strategy yields specs the suite accepts at their own input size (no framework)."""
    nin.layer_table(spec)  # raises SpecError if the spec cannot run at its input size
    assert spec.ndim in (2, 3) and 1 <= len(spec.blocks()) <= 3
    for block in spec.blocks():
        assert 2 <= len(block.convs) <= 4 and all(1 <= c.out_channels <= 8 for c in block.convs[:1])
