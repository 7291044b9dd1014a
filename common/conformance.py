"""``nin conformance``: every backend × model against the spec and the NumPy oracle, on the
CPU or the GPU, in float32 or bf16 — the properties of ``nin.checks``, run as a report.  The
test suite (tests/test_conformance.py and others) calls the same functions, one test id per case.

Each cell (backend, model, precision) holds: the parameter count; every layer's shape
(exactly, against the oracle's) and value; the logits; and, for a backend that trains, every
gradient at the model's smallest input.  Each trainer also gets one cell of K = 4 SGD steps
of nin_tiny against ``nin.train.sgd_reference`` (``nin.checks.sgd_case``).

Tolerances, against the float64 oracle, for float32 (on CPU, and on GPU with TF32 off):

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
* K SGD steps: the derivation is in tests/test_train_backends.py (weights 1e-4·max|w|,
  momentum buffers 1e-3·max|b|, losses 1e-5).

bf16 (mixed precision: float32 parameters, bfloat16 arithmetic; torch and jax), against the
same float64 oracle.  bfloat16 keeps 8 significant bits: unit roundoff u = 2⁻⁸ ≈ 3.9e-3.

* forward: max|Δ| ≤ 4·√L·u · max|ref| for every layer, L the model's number of convolutions
  (and head).  Each convolution rounds its input and its weights to bfloat16 (one u each,
  relative to each product), accumulates in float32, and its output is rounded again: about
  u of relative error per layer, from independent roundings, so after L layers it has grown
  like a random walk to √L·u; the largest of many values stays within 4 of those standard
  deviations.  nin_tiny (L = 9): 4.7e-2; nin_d2l (12): 5.4e-2.  Measured on CPU (torch 2.13,
  jax 0.7.1, batch 2, ``random_weights``): 9.2e-3 and 1.6e-2 (nin_tiny), 1.7e-2 both
  (nin_d2l), worst layer.
* gradients: max|Δ| ≤ 8·√(2L)·u · max|ref| per tensor: the backward pass adds a second
  rounded product per layer (2L stages), and ReLU gates and max-pool winners that bfloat16
  rounding moves add errors of the same order (a factor 2).  nin_tiny: 0.13; measured 9.2e-3
  (torch) and 8.9e-3 (jax).  This holds only where every ReLU pre-activation is at least one
  u of its terms from 0 (``MIN_BF16_RELU_MARGIN``): closer, bfloat16 may gate it either way,
  and the gradient is not determined at bfloat16 resolution at all — rounding only the
  weights and the input to bfloat16 moves the float64 oracle's own gradient of nin_cifar10
  (margin 1.3e-5) by 0.20·max|ref|, of nin3d by 0.35.  Of the zoo, only nin_tiny's gradient
  case (margin 5.5e-3 ≈ 1.4 u) qualifies; the other cells say "n/a" with the margin.
* K SGD steps: each step's loss within the forward tolerance (a forward quantity), and each
  tensor's update w_K − w_0 within the gradient tolerance of the oracle's update (the update
  is a rate-weighted sum of gradients, so its relative error is theirs).  A lost, doubled or
  reversed update gives 1 or more.  Measured (nin_tiny, K = 4): 7.1e-2 (torch and jax)
  against 0.13; the losses 1.6e-4 and 3.0e-4.  The momentum buffers are not compared in
  bf16: each is the last step's gradient sum, 0.08–0.10 off at bfloat16 resolution.

The verdict (``passed``, and the command's exit status 0 or 1): every cell that ran holds every
property; at least one cell ran (a run that checked nothing — a core-only install, or
``--device gpu`` where no backend sees a GPU — is not a pass); and every backend named in
``backends`` or ``require_gpu`` could run (installed and, on the GPU, seeing one).  A backend
of the default list that cannot run is reported with the reason and does not fail the run.
"""

from __future__ import annotations

import argparse
import functools
import time

from .checks import (
    FORWARD_RTOL,
    GRAD_RTOL,
    LOSS_RTOL,
    MIN_RELU_MARGIN,
    SGD_MODEL,
    SGD_RATES,
    Check,
    check_gradients,
    check_layers,
    check_logits,
    check_param_count,
    check_sgd_steps,
    forward_case,
    forward_rtol,
    gpu_missing_reason,
    grad_rtol,
    gradient_case,
    max_rel_error,
    min_relu_margin,
    random_weights,
    run_failures,
    sample_batch,
    sgd_case,
)
from .tables import markdown_table, text_table
from .zoo import get_spec, list_models

__all__ = [  # the names other modules take from here: the tolerances and helpers of nin.checks
    "FORWARD_RTOL",
    "GRAD_RTOL",
    "MIN_RELU_MARGIN",
    "check_model",
    "check_training",
    "conformance_markdown",
    "conformance_text",
    "gradient_case",
    "max_rel_error",
    "random_weights",
    "run_matrix",
    "sample_batch",
]

PRECISION_CHOICES = ("float32", "bf16", "all")


def check_model(adapter, model: str, trains: bool, device: str = "cpu", precision: str = "float32") -> dict:
    """One cell: the parameter count, every layer, the logits and (where the backend
    ``trains``) the gradients of ``adapter`` on ``model``; ``{"checks": [Check], "notes": [...]}``."""
    spec = get_spec(model)
    case = forward_case(spec)
    net = adapter.build(spec, seed=0, device=device, precision=precision)
    adapter.load_state(net, case.weights)
    rtol = forward_rtol(spec, precision)
    checks = [check_param_count(adapter, net, spec), check_layers(adapter, net, case, rtol)]
    checks.append(check_logits(adapter, net, case, rtol))
    notes = []
    if not trains:
        notes.append("gradients: n/a (inference only)")
    else:
        grad = gradient_case(model)
        if grad.margin < min_relu_margin(precision):
            notes.append(
                f"gradients: n/a in {precision} (the case's ReLU margin {grad.margin:.1e} < "
                f"{min_relu_margin(precision):.1e}: {precision} rounding may gate a ReLU either way)"
            )
        else:
            small = adapter.build(grad.spec, seed=1, device=device, precision=precision)
            adapter.load_state(small, grad.weights)
            loss_rtol = LOSS_RTOL if precision == "float32" else forward_rtol(grad.spec, precision)
            checks.append(check_gradients(adapter, small, grad, grad_rtol(grad.spec, precision), loss_rtol))
    return {"checks": checks, "notes": notes}


def check_training(adapter, device: str = "cpu", precision: str = "float32") -> Check:
    """K SGD steps of the backend's ``Trainer`` on ``nin.checks.sgd_case`` against the oracle."""
    case = sgd_case()
    model = adapter.build(case.spec, case.recipe.seed, device=device, init=case.recipe.init, precision=precision)
    return check_sgd_steps(adapter.Trainer(model, case.recipe), case, precision)


def _cell(name: str, version: str, model: str, device: str, precision: str, run) -> dict:
    """Run one cell; a crash is a failed cell ("error"), reported, not a stopped matrix."""
    cell = {"backend": name, "framework": version, "model": model, "device": device, "precision": precision}
    start = time.perf_counter()
    try:
        result = run()
    except Exception as e:
        return {**cell, "status": "error", "error": f"{type(e).__name__}: {e}", "checks": [], "notes": []}
    checks = result["checks"] if isinstance(result, dict) else [result]
    status = "ok" if all(c.ok for c in checks) else "mismatch"
    return {
        **cell,
        "status": status,
        "seconds": round(time.perf_counter() - start, 2),
        "checks": [c.to_json() for c in checks],
        "notes": result["notes"] if isinstance(result, dict) else [],
    }


def run_matrix(
    backends: list[str] | None = None,
    models: list[str] | None = None,
    device: str = "cpu",
    precision: str = "float32",
    require_gpu: list[str] | None = None,
) -> dict:
    """Every backend × model × precision ("float32", "bf16" or "all") on ``device``, and one
    K-step cell per trainer and precision; the verdict as the module docstring says."""
    from .frameworks import (
        PRECISIONS,
        backend_precisions,
        backend_trains,
        get_backend,
        list_runtimes,
        unavailable_reason,
    )

    required = set(backends or ()) | set(require_gpu or ())
    names = list(backends or list_runtimes())
    names += [name for name in require_gpu or () if name not in names]
    models = models or list_models()
    for m in models:
        get_spec(m)  # unknown names fail here, before any framework is imported
    precisions = PRECISIONS if precision == "all" else (precision,)
    cells, cannot_run = [], {}
    for name in names:
        reason = gpu_missing_reason(name) if device == "gpu" else unavailable_reason(name)
        if reason:
            cannot_run[name] = ("no GPU visible: " if device == "gpu" else "unavailable: ") + reason
            continue
        adapter = get_backend(name)
        version, trains = adapter.framework_version(), backend_trains(name)
        for p in (p for p in precisions if p in backend_precisions(name)):
            for model in models:
                run = functools.partial(check_model, adapter, model, trains, device, p)
                cells.append(_cell(name, version, model, device, p, run))
            if trains:
                run = functools.partial(check_training, adapter, device, p)
                cells.append(_cell(name, version, f"{SGD_MODEL}: {len(SGD_RATES)} SGD steps", device, p, run))
    ran = [(f"{c['backend']} {c['model']} {c['precision']}", c["status"], _detail(c)) for c in cells]
    failures = run_failures(ran, cannot_run, required)
    return {
        "device": device,
        "precisions": list(precisions),
        "tolerances": {"forward": FORWARD_RTOL, "gradients": GRAD_RTOL, "bf16": "nin.conformance (4·√L·u, 8·√(2L)·u)"},
        "cells": cells,
        "cannot_run": cannot_run,
        "failures": failures,
        "passed": not failures,
        "status": "ok" if not failures else "failed",
    }


def _detail(cell: dict) -> str:
    """What went wrong in a cell, one line: the error, or each property that does not hold."""
    if cell["status"] == "error":
        return cell["error"]
    return "; ".join(f"{c['property']}: {c['message']}" for c in cell["checks"] if c["verdict"] != "ok")


HEADER = ("backend", "model", "precision", "params", "shapes", "layers", "logits", "gradients", "K steps", "result")


def _rows(result: dict) -> list[tuple]:
    rows = []
    for c in result["cells"]:
        head = (c["backend"], c["model"], c["precision"])
        if c["status"] == "error":
            rows.append((*head, "-", "-", "-", "-", "-", "-", "ERROR"))
            continue
        got = {k["property"]: k for k in c["checks"]}
        params = got.get("params")
        count = (
            "-" if params is None else f"{int(params['figure']):,}" + ("" if params["verdict"] == "ok" else " ≠ spec")
        )
        layers = got.get("layers")
        shapes = "WRONG" if "layer shapes" in got else "-" if layers is None else "ok"
        note = next((n for n in c["notes"] if n.startswith("gradients")), None)
        gradients = _figure(got.get("gradients")) if note is None else note.split(" (")[0].removeprefix("gradients: ")
        rows.append(
            (*head, count, shapes, _figure(layers), _figure(got.get("logits")), gradients, _figure(got.get("sgd steps")),
             "ok" if c["status"] == "ok" else "MISMATCH")
        )  # fmt: skip
    return rows


def _figure(check: dict | None) -> str:
    if check is None:
        return "-"
    figure = check["figure"]
    return (f"{figure:.1e}" if isinstance(figure, float) else str(figure)) + ("" if check["verdict"] == "ok" else " !")


def conformance_text(result: dict) -> str:
    """The matrix as a text table, with the tolerances, the backends that could not run, and
    one line per failure."""
    n_ok = sum(c["status"] == "ok" for c in result["cells"])
    lines = [text_table(HEADER, _rows(result), right=(3, 5, 6, 7, 8)), ""] if result["cells"] else []
    lines.append(
        f"{n_ok}/{len(result['cells'])} cells hold every property on the {result['device'].upper()} "
        f"(max|Δ| relative to max|reference|; allowed in float32 {FORWARD_RTOL:.0e} for layers and logits, "
        f"{GRAD_RTOL:.0e} for gradients; bf16 bounds in docs/conformance.md)"
    )
    lines += [f"{name}: {why}" for name, why in result["cannot_run"].items()]
    lines += [f"FAILED: {line}" for line in result["failures"]]
    return "\n".join(lines)


def conformance_markdown(result: dict) -> str:
    return markdown_table(HEADER, _rows(result), right=(3, 5, 6, 7, 8))


HELP = "backend × model matrix: params, every layer's shape and value, logits, gradients, K SGD steps"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .commands import EXIT_STATUS, name_list
    from .files import output_file

    p.description = (
        "Every backend × model against the spec and the NumPy oracle: parameter count, every layer's "
        "shape and value, logits, gradients, and K SGD steps per trainer (tolerances: nin.conformance, "
        f"docs/conformance.md). {EXIT_STATUS} With --device gpu a backend that sees no GPU is reported "
        "'no GPU visible' with the reason (CPU-only build, no driver, no CUDA plugin) and fails the run only "
        "when --backends or --require-gpu names it; a run where no backend sees a GPU checked nothing, and fails."
    )
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "bf16", "all"),
        help="bf16: mixed precision against the oracle at the bf16 bounds (backends that have it: torch, jax); "
        "all: both (default float32)",
    )
    p.add_argument(
        "--require-gpu",
        type=name_list,
        default=[],
        metavar="LIST",
        help="comma list, e.g. torch,jax: with --device gpu, fail (exit 1, saying why) when one of these sees no GPU",
    )
    p.add_argument("--json", metavar="FILE", type=output_file)
    p.add_argument("--markdown", metavar="FILE", type=output_file)
    return p


def run(args: argparse.Namespace) -> int:
    from .commands import check_backends, check_models, save, verdict
    from .errors import NinError

    check_models(args.models or [])
    check_backends(args.backends, runtimes=True)
    check_backends(args.require_gpu, runtimes=True)
    if args.require_gpu and args.device != "gpu":
        raise NinError(f"--require-gpu {','.join(args.require_gpu)} needs --device gpu; got --device {args.device}")
    result = run_matrix(args.backends, args.models, args.device, args.precision, args.require_gpu)
    print(conformance_text(result))
    save(result, args.json, args.markdown, conformance_markdown)
    return verdict(args, result)
