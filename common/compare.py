"""``nin compare``: the four frameworks and onnxruntime side by side on one model.

One row per backend: framework and version, parameter count from the framework's own list,
output shape, the relative error of the logits against the NumPy oracle (the same canonical
weights: ``nin.checks.random_weights``, non-zero biases included), build time (construction +
loading the weights) and first-call time (tracing / compilation), and the median eval-mode
forward latency over ``repeats`` calls.  Every framework gets the same thread count.
``device="gpu"`` runs every backend on its CUDA device (TF32 off, as ``build`` sets it).

A row's status is "ok" only when every property ``nin.checks`` checks here holds — the
parameter count, every layer's shape and value, the logits — and "mismatch" otherwise, naming
the property and the figure.  A backend that is not installed (or, on the GPU, sees none) is
reported with the reason; the verdict (``passed``) is ``nin.conformance``'s: every row that ran
is ok, at least one ran, and every backend named in ``backends`` could run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from .checks import (
    FORWARD_RTOL,
    check_layers,
    check_logits,
    check_param_count,
    forward_case,
    gpu_missing_reason,
    run_failures,
)
from .shapes import param_count
from .tables import text_table
from .zoo import get_spec


def compare(
    model: str = "nin_d2l",
    backends: list[str] | None = None,
    batch_size: int = 8,
    repeats: int = 5,
    device: str = "cpu",
) -> dict:
    """The side-by-side table's data: one row per backend on ``device`` ("cpu" or "gpu"), and
    the verdict (``passed``, ``failures``)."""
    from .frameworks import get_backend, list_runtimes, unavailable_reason

    spec = get_spec(model)
    names = backends or list_runtimes()
    adapters, rows, cannot_run = {}, [], {}
    for name in names:
        reason = gpu_missing_reason(name) if device == "gpu" else unavailable_reason(name)
        if reason:
            status = "no GPU" if device == "gpu" and unavailable_reason(name) is None else "unavailable"
            rows.append({"backend": name, "status": status, "reason": reason})
            cannot_run[name] = f"{status}: {reason}"
        else:
            adapters[name] = get_backend(name)
    threads = os.cpu_count() or 1
    for name in adapters:  # after every import: importing MXNet drops PyTorch to one thread
        adapters[name].set_threads(threads)
    case = forward_case(spec, seed=0, n=batch_size)
    for name, adapter in adapters.items():
        row = {"backend": name, "framework": adapter.framework_version()}
        try:
            start = time.perf_counter()
            net = adapter.build(spec, seed=0, device=device)
            adapter.load_state(net, case.weights)
            row["device"] = adapter.device_name(device)
            row["build_s"] = time.perf_counter() - start
            start = time.perf_counter()
            logits = adapter.forward(net, case.x)
            row["first_call_s"] = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                adapter.forward(net, case.x)
                times.append(time.perf_counter() - start)
            checks = [check_param_count(adapter, net, spec), check_layers(adapter, net, case)]
            checks.append(check_logits(adapter, net, case))
            row.update(
                status="ok" if all(c.ok for c in checks) else "mismatch",
                params=adapter.param_count(net),
                output_shape=list(logits.shape),
                max_rel_error=checks[-1].figure,
                forward_s=statistics.median(times),
                checks=[c.to_json() for c in checks],
            )
            if row["status"] == "mismatch":
                row["reason"] = "; ".join(f"{c.property}: {c.message}" for c in checks if not c.ok)
        except Exception as e:  # one broken backend must not hide the others
            row.update(status="error", reason=f"{type(e).__name__}: {e}")
        rows.append(row)
    order = {n: i for i, n in enumerate(names)}
    rows.sort(key=lambda r: order[r["backend"]])
    ran = [(r["backend"], r["status"], r.get("reason", "")) for r in rows if r["backend"] in adapters]
    failures = run_failures(ran, cannot_run, set(backends or ()))
    return {
        "model": model,
        "spec_params": param_count(spec),
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
        "repeats": repeats,
        "forward_rtol": FORWARD_RTOL,
        "rows": rows,
        "failures": failures,
        "passed": not failures,
        "status": "ok" if not failures else "failed",
    }


def compare_text(result: dict) -> str:
    """The table, its note, and one line per row that is not ok (what differs, or why it did not run)."""
    table = []
    for r in result["rows"]:
        if "params" not in r:  # did not run, or crashed
            table.append((r["backend"], r.get("framework", "-"), "-", "-", "-", "-", "-", "-", r["status"]))
            continue
        failed = [c["property"] for c in r["checks"] if c["verdict"] != "ok"]
        table.append(
            (
                r["backend"],
                r["framework"],
                f"{r['params']:,}",
                "×".join(map(str, r["output_shape"])),
                f"{r['max_rel_error']:.1e}",
                f"{r['build_s']:.2f}",
                f"{r['first_call_s']:.2f}",
                f"{1e3 * r['forward_s']:.0f}",
                "ok" if r["status"] == "ok" else "MISMATCH: " + ", ".join(failed),
            )
        )
    header = (
        "backend",
        "framework",
        "params",
        "output",
        "rel. error vs ref",
        "build s",
        "1st call s",
        "forward ms",
        "status",
    )
    head = (
        f"{result['model']}: batch {result['batch_size']} on the {result['device'].upper()}, {result['threads']} threads, "
        f"median of {result['repeats']} eval forwards; spec params {result['spec_params']:,}"
    )
    foot = (
        f"rel. error is max|logits − NumPy reference| / max|reference| with the same canonical weights, biases "
        f"included; ok: the parameter count is the spec's and every layer and the logits agree (≤ {FORWARD_RTOL:.0e})."
    )
    notes = [f"{r['backend']}: {r['status']}: {r['reason']}" for r in result["rows"] if "framework" not in r]
    ran = sum(r["status"] == "ok" for r in result["rows"])
    verdict = [f"verdict: ok ({ran} of {len(result['rows'])} backends ran, every one agrees with the oracle)"]
    if result["failures"]:
        verdict = [f"verdict: FAILED: {line}" for line in result["failures"]]
    return "\n".join([head, "", text_table(header, table, right=(2, 4, 5, 6, 7)), "", foot, *notes, *verdict])


HELP = "one table, a row per backend, checked against the NumPy reference"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .commands import EXIT_STATUS
    from .files import output_file

    p.description = (
        "One row per backend: parameter count, output, logits against the NumPy oracle, timings. " + EXIT_STATUS
    )
    p.add_argument("model", nargs="?", default="nin_d2l")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--json", metavar="FILE", type=output_file)
    return p


def run(args: argparse.Namespace) -> int:
    from .commands import check_backends, check_models, save, verdict

    check_models([args.model])
    check_backends(args.backends, runtimes=True)
    result = compare(args.model, args.backends, batch_size=args.batch_size, repeats=args.repeats, device=args.device)
    print(compare_text(result))
    save(result, args.json)
    return verdict(args, result)
