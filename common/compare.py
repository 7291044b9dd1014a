"""``nin compare``: the four frameworks and onnxruntime side by side on one model.

One row per backend: framework and version, parameter count from the framework's own list,
output shape, the relative error of the logits against the NumPy oracle (same canonical weights), build
time (construction + loading the weights) and first-call time (tracing / compilation), and
the median eval-mode forward latency over ``repeats`` calls.  Backends that are not installed
appear with the reason.  Every framework gets the same thread count.  ``device="gpu"`` runs
every backend on its CUDA device (TF32 off, as ``build`` sets it).
"""

from __future__ import annotations

import os
import statistics
import time

from .conformance import FORWARD_RTOL, max_rel_error, sample_batch
from .shapes import param_count
from .tables import text_table
from .weights import init_weights
from .zoo import get_spec


def compare(
    model: str = "nin_d2l",
    backends: list[str] | None = None,
    batch_size: int = 8,
    repeats: int = 5,
    device: str = "cpu",
) -> dict:
    """The side-by-side table's data: one row per backend on ``device`` ("cpu" or "gpu"; a
    backend that cannot place the model there reports its reason as an error row)."""
    from . import reference
    from .errors import NinError
    from .frameworks import get_backend, list_runtimes

    spec = get_spec(model)
    names = backends or list_runtimes()
    adapters, rows = {}, []
    for name in names:
        try:
            adapters[name] = get_backend(name)
        except NinError as e:
            rows.append({"backend": name, "status": "unavailable", "reason": str(e)})
    threads = os.cpu_count() or 1
    for name in adapters:  # after every import: importing MXNet drops PyTorch to one thread
        adapters[name].set_threads(threads)
    x = sample_batch(spec, batch_size)
    ref_logits, _ = reference.forward(spec, init_weights(spec, 0), x)
    for name, adapter in adapters.items():
        row = {"backend": name, "framework": adapter.framework_version()}
        try:
            start = time.perf_counter()
            net = adapter.build(spec, seed=0, device=device)
            row["device"] = adapter.device_name(device)
            row["build_s"] = time.perf_counter() - start
            start = time.perf_counter()
            logits = adapter.forward(net, x)
            row["first_call_s"] = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                adapter.forward(net, x)
                times.append(time.perf_counter() - start)
            row.update(
                status="ok",
                params=adapter.param_count(net),
                output_shape=list(logits.shape),
                max_rel_error=max_rel_error(logits, ref_logits),
                forward_s=statistics.median(times),
            )
        except Exception as e:  # one broken backend must not hide the others
            row.update(status="error", reason=f"{type(e).__name__}: {e}")
        rows.append(row)
    order = {n: i for i, n in enumerate(names)}
    rows.sort(key=lambda r: order[r["backend"]])
    return {
        "model": model,
        "spec_params": param_count(spec),
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
        "repeats": repeats,
        "rows": rows,
    }


def compare_text(result: dict) -> str:
    table = []
    for r in result["rows"]:
        if r["status"] != "ok":
            table.append(
                (r["backend"], r.get("framework", "-"), "-", "-", "-", "-", "-", "-", f"{r['status']}: {r['reason']}")
            )
            continue
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
                "ok" if r["params"] == result["spec_params"] and r["max_rel_error"] <= FORWARD_RTOL else "MISMATCH",
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
    foot = f"rel. error is max|logits − NumPy reference| / max|reference| with the same canonical weights (pass ≤ {FORWARD_RTOL:.0e})."
    return "\n".join([head, "", text_table(header, table, right=(2, 4, 5, 6, 7)), "", foot])
