"""``nin bench``: the four frameworks timed side by side, fairly.

For each backend × model × batch size, in a fresh subprocess (so no framework's import or
thread settings leak into another's numbers, and the peak RSS is the case's own):

* first call: build + the first forward (tracing / compilation included);
* forward: eval-mode latency, ``warmup`` untimed calls then the median, min and max of
  ``repeats`` timed calls, each ending in a host NumPy array (so asynchronous runtimes are
  synchronised: ``.numpy()``, ``np.asarray`` of a ready JAX array, ``asnumpy``);
* training step: the backend's own ``Trainer.step`` (forward + backward + SGD update with
  momentum and weight decay), timed the same way;
* achieved GFLOP/s from the spec's multiply-accumulates (a forward is 2·MACs FLOPs per
  example, a training step 3× a forward), and that as a fraction of this machine's peak,
  measured in the same run by a float32 matrix-product probe;
* the peer: the d2l book's own NiN code for that framework (``frameworks/<name>/d2l_book.py``)
  on the same inputs, for ``nin_d2l``.

Every subprocess gets the same thread count (``--threads``, default all cores), set through
``OMP_NUM_THREADS`` and each framework's own setting after its import — importing MXNet
silently drops PyTorch to one thread.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .shapes import mac_count
from .tables import markdown_table, text_table
from .zoo import get_spec


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 GEMM throughput of this process (NumPy's BLAS), the best of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _stats(fn, warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        fn()
    times = [_timed(fn) for _ in range(repeats)]
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def set_framework_threads(backend: str, threads: int) -> None:
    """Each framework's own thread setting, applied after its import."""
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # already initialised: OMP_NUM_THREADS still applies
            pass


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(
    backend: str,
    model: str,
    batch_size: int,
    input_size,
    device: str,
    threads: int,
    warmup: int,
    repeats: int,
    peer: bool,
) -> dict:
    """One measurement, in this process (``nin bench`` runs it in a subprocess)."""
    from . import get_backend
    from .conformance import sample_batch

    spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
    adapter = get_backend(backend)
    set_framework_threads(backend, threads)
    x = sample_batch(spec, batch_size)
    y = (np.arange(batch_size) % spec.num_classes).astype(np.int64)
    record = {
        "backend": backend,
        "framework": adapter.framework_version(),
        "model": model,
        "batch_size": batch_size,
        "input_size": list(spec.input_size),
        "device": device,
        "threads": threads,
        "macs_per_example": mac_count(spec),
    }
    start = time.perf_counter()
    net = adapter.build(spec, seed=0, device=device)
    adapter.forward(net, x)
    record["first_call_s"] = time.perf_counter() - start
    fwd = _stats(lambda: adapter.forward(net, x), warmup, repeats)
    record.update(forward_s=fwd["median"], forward_min_s=fwd["min"], forward_max_s=fwd["max"])

    try:
        from importlib import import_module

        from .train import Recipe

        trainer = import_module(f"nin.frameworks.{backend}.train").Trainer(net, Recipe())
        start = time.perf_counter()
        trainer.step(x, y, 0.01)
        record["first_train_step_s"] = time.perf_counter() - start
        step = _stats(lambda: trainer.step(x, y, 0.01), warmup, repeats)
        record.update(train_step_s=step["median"], train_step_min_s=step["min"], train_step_max_s=step["max"])
    except ImportError as e:
        record["train_step_error"] = f"no training step: {e}"

    if peer and model == "nin_d2l" and spec.input_size == (224, 224) and device == "cpu":
        record.update(_peer(backend, x, y, warmup, repeats))
    record["peak_rss_mb"] = peak_rss_mb()
    record.update(_device_memory(backend, device))
    return record


def _peer(backend: str, x, y, warmup: int, repeats: int) -> dict:
    """The d2l book's code for the same framework on the same inputs."""
    from importlib import import_module

    try:
        book = import_module(f"nin.frameworks.{backend}.d2l_book")
    except ImportError as e:
        return {"peer_error": f"the d2l book's code does not import here: {e}"}
    model = book.build()
    fwd = _stats(lambda: book.forward(model, x), warmup, repeats)
    step_fn = book.make_train_step(model)
    step = _stats(lambda: step_fn(x, y), warmup, repeats)
    return {"peer_forward_s": fwd["median"], "peer_train_step_s": step["median"]}


def _device_memory(backend: str, device: str) -> dict:
    if device != "gpu":
        return {}
    if backend == "torch":
        import torch

        return {"device_peak_mb": torch.cuda.max_memory_allocated() / 2**20}
    if backend == "jax":
        import jax

        stats = jax.devices("gpu")[0].memory_stats() or {}
        return {"device_peak_mb": stats.get("peak_bytes_in_use", 0) / 2**20}
    return {}


def derive(record: dict, peak_gflops: float) -> dict:
    """GFLOP/s and fractions of peak from the timings and the spec's MACs."""
    flops = 2 * record["macs_per_example"] * record["batch_size"]
    out = dict(record, peak_gflops=peak_gflops)
    out["images_per_s"] = record["batch_size"] / record["forward_s"]
    out["forward_gflops"] = flops / record["forward_s"] / 1e9
    out["forward_peak_fraction"] = out["forward_gflops"] / peak_gflops
    if "train_step_s" in record:
        out["train_images_per_s"] = record["batch_size"] / record["train_step_s"]
        out["train_gflops"] = 3 * flops / record["train_step_s"] / 1e9
        out["peak_fraction"] = out["train_gflops"] / peak_gflops
    return out


def bench(
    backends: list[str],
    models: list[str],
    batch_sizes: list[int],
    input_size=None,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 2,
    repeats: int = 5,
    peer: bool = True,
    log=print,
) -> dict:
    """Every case in its own subprocess; a failed case is reported, not fatal."""
    threads = threads or os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
    peak = matmul_peak_gflops()
    log(f"float32 matrix-product peak: {peak:.0f} GFLOP/s ({threads} threads)")
    records = []
    for model in models:
        for backend in backends:
            for batch_size in batch_sizes:
                args = [backend, model, batch_size, input_size, device, threads, warmup, repeats, peer]
                proc = subprocess.run(
                    [sys.executable, "-m", "nin.bench", json.dumps(args)], capture_output=True, text=True, env=env
                )
                if proc.returncode != 0:
                    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    record = {"backend": backend, "model": model, "batch_size": batch_size, "error": tail}
                else:
                    record = derive(json.loads(proc.stdout.strip().splitlines()[-1]), peak)
                records.append(record)
                log(_one_line(record))
    return {"machine": machine_description(), "peak_gflops": peak, "threads": threads, "records": records}


def machine_description() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _one_line(r: dict) -> str:
    if "error" in r:
        return f"{r['backend']:>10} {r['model']} b{r['batch_size']}: FAILED {r['error']}"
    train = (
        f", train step {r['train_step_s']:.3f} s ({100 * r['peak_fraction']:.0f}% of peak)"
        if "train_step_s" in r
        else ""
    )
    return (
        f"{r['backend']:>10} {r['model']} b{r['batch_size']}: forward {1e3 * r['forward_s']:.1f} ms "
        f"({100 * r['forward_peak_fraction']:.0f}% of peak){train}"
    )


HEADER = (
    "backend", "model", "batch", "forward ms", "img/s", "fwd % peak", "train step s", "train % peak",
    "1st call s", "RSS MB", "d2l fwd ms", "d2l step s",
)  # fmt: skip


def _rows(result: dict) -> list[tuple]:
    rows = []
    for r in result["records"]:
        if "error" in r:
            rows.append((r["backend"], r["model"], r["batch_size"], "FAILED: " + r["error"][:50], *[""] * 8))
            continue
        rows.append(
            (
                r["backend"],
                r["model"],
                r["batch_size"],
                f"{1e3 * r['forward_s']:.1f}",
                f"{r['images_per_s']:.0f}",
                f"{100 * r['forward_peak_fraction']:.0f}%",
                f"{r['train_step_s']:.3f}" if "train_step_s" in r else "-",
                f"{100 * r['peak_fraction']:.0f}%" if "peak_fraction" in r else "-",
                f"{r['first_call_s']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{1e3 * r['peer_forward_s']:.1f}" if "peer_forward_s" in r else "-",
                f"{r['peer_train_step_s']:.3f}" if "peer_train_step_s" in r else "-",
            )
        )
    return rows


def bench_text(result: dict) -> str:
    head = f"{result['machine']}; float32 matmul peak {result['peak_gflops']:.0f} GFLOP/s; {result['threads']} threads"
    return head + "\n\n" + text_table(HEADER, _rows(result), right=tuple(range(2, 12)))


def bench_markdown(result: dict) -> str:
    head = f"Measured on {result['machine']}; float32 matmul peak {result['peak_gflops']:.0f} GFLOP/s; {result['threads']} threads."
    return head + "\n\n" + markdown_table(HEADER, _rows(result), right=tuple(range(2, 12)))


def bench_plot(result: dict, path: str | Path) -> Path:
    """Bar chart: achieved fraction of peak, forward and training step, per backend/model/batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in result["records"] if "error" not in r]
    labels = [f"{r['backend']}\n{r['model']}\nb{r['batch_size']}" for r in ok]
    xs = np.arange(len(ok))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(ok)), 4.5))
    ax.bar(xs - 0.2, [100 * r["forward_peak_fraction"] for r in ok], 0.4, label="forward (eval)")
    ax.bar(xs + 0.2, [100 * r.get("peak_fraction", 0) for r in ok], 0.4, label="training step")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel(f"% of matmul peak ({result['peak_gflops']:.0f} GFLOP/s)")
    ax.set_title(result["machine"], fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(json.dumps(run_case(*json.loads(sys.argv[1]))))
