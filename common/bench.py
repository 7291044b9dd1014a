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
  example, a training step 3× a forward), and that as a fraction of this machine's peak;
* the peer: the d2l book's own NiN code for that framework (``frameworks/<name>/d2l_book.py``)
  on the same inputs, for ``nin_d2l`` in float32 on the CPU.

``precision="bf16"`` measures mixed precision (float32 parameters and update, bfloat16
arithmetic) where the backend has it (``nin.frameworks.backend_precisions``: torch and jax);
the other backends report an error record.

The peak is the best of several GEMM probes, each in its own subprocess with the cases' thread
settings, each the best of ``PEAK_REPEATS`` products at every n of ``PEAK_SIZES``: on the CPU,
NumPy's float32 GEMM and each benchmarked framework's own (``torch.mm``, ``tf.linalg.matmul``,
a jitted ``jnp.dot``, ``mx.nd.dot``) — oneDNN's and XLA's kernels can outrun NumPy's BLAS, and
a probe slower than the cases would put them above 100 %; on a GPU, torch's (TF32 off) and
JAX's (``Precision.HIGHEST``).  A bf16 run probes bfloat16 GEMMs too.

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
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from .shapes import mac_count
from .tables import markdown_table, text_table
from .zoo import get_spec

PEAK_SIZES = (2048, 4096)
PEAK_REPEATS = 3
# the frameworks whose GEMM probes a GPU, with the cases' settings (TF32 off; Precision.HIGHEST)
GPU_PROBES = ("torch", "jax")


def _matmul(framework: str, n: int, device: str, dtype: str) -> Callable[[], object]:
    """A call that multiplies two n×n ``dtype`` matrices with ``framework``'s own GEMM and
    waits for the product.  TensorFlow and MXNet are probed on the CPU only (``GPU_PROBES``)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    if framework == "numpy":
        return lambda: a @ b
    from . import get_backend

    get_backend(framework)  # the framework imported as the cases import it (MXNet needs its numpy.bool)
    if framework == "torch":
        import torch

        from .frameworks.torch.adapter import _device

        place = _device(device)  # the cases' device setup: on a GPU, TF32 off
        ta, tb = (
            torch.from_numpy(m).to(place, {"float32": torch.float32, "bf16": torch.bfloat16}[dtype]) for m in (a, b)
        )

        def product():
            torch.mm(ta, tb)
            if place.type == "cuda":
                torch.cuda.synchronize()

        return product
    if framework == "jax":
        import jax
        import jax.numpy as jnp
        from jax import lax

        from .frameworks.jax.adapter import _device

        place = _device(device)
        ja, jb = (
            jax.device_put(m.astype({"float32": jnp.float32, "bf16": jnp.bfloat16}[dtype]), place) for m in (a, b)
        )
        # as the cases: HIGHEST keeps float32 off TF32 on a GPU; bfloat16 needs no request
        product = jax.jit(partial(jnp.dot, precision=lax.Precision.HIGHEST if dtype == "float32" else None))
        return lambda: product(ja, jb).block_until_ready()
    if framework == "tensorflow":
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        return lambda: tf.linalg.matmul(ta, tb).numpy()
    import mxnet as mx

    ma, mb = mx.nd.array(a), mx.nd.array(b)

    def product():
        mx.nd.dot(ma, mb)
        mx.nd.waitall()

    return product


def gemm_gflops(
    framework: str, device: str = "cpu", dtype: str = "float32", sizes=PEAK_SIZES, repeats: int = PEAK_REPEATS
) -> float:
    """GEMM throughput of ``framework`` ("numpy" or a backend) in this process: for each n in
    ``sizes``, one untimed product then the best of ``repeats``; the best over the sizes."""
    best = 0.0
    for n in sizes:
        matmul = _matmul(framework, n, device, dtype)
        matmul()
        best = max(best, 2 * n**3 / min(_timed(matmul) for _ in range(repeats)) / 1e9)
    return best


def _probe_name(framework: str, dtype: str) -> str:
    return framework if dtype == "float32" else f"{framework} {dtype}"


def peak_probe(framework: str, device: str, precision: str, threads: int, sizes) -> dict[str, float]:
    """``{probe name: GFLOP/s}`` of one framework's GEMM in this process (``nin bench`` runs it
    in a subprocess, with the cases' thread settings): float32, and bfloat16 too when the run
    is bf16 and the framework computes in it."""
    from .frameworks import backend_precisions

    dtypes = ["float32"]
    if framework != "numpy":
        set_framework_threads(framework, threads)
        if precision != "float32" and precision in backend_precisions(framework):
            dtypes.append(precision)
    return {_probe_name(framework, dtype): gemm_gflops(framework, device, dtype, sizes) for dtype in dtypes}


def machine_peak(frameworks: list[str], device: str, precision: str, threads: int, sizes, env: dict, log) -> dict:
    """Every framework's GEMM probe, each in its own subprocess; the peak is the best of them.
    A framework that fails (not installed, no GPU) is skipped, with its reason."""
    probes: dict[str, float] = {}
    errors: dict[str, str] = {}
    for framework in frameworks:
        args = {"framework": framework, "device": device, "precision": precision, "threads": threads, "sizes": sizes}
        out = _in_subprocess("probe", args, env)
        if "error" in out:
            errors[framework] = out["error"]
            log(f"GEMM probe {framework}: skipped, {out['error']}")
            continue
        probes.update(out)
        log("GEMM probe " + ", ".join(f"{name}: {gflops:.0f} GFLOP/s" for name, gflops in out.items()))
    best = max(probes, key=probes.__getitem__) if probes else None
    return {
        "peak_gflops": probes[best] if best else None,
        "peak_probe": best,
        "peak_probes": probes,
        "peak_probe_errors": errors,
    }


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
    precision: str,
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
        "precision": precision,
        "threads": threads,
        "macs_per_example": mac_count(spec),
    }
    start = time.perf_counter()
    net = adapter.build(spec, seed=0, device=device, precision=precision)
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

    # the book's code is float32 on the CPU: a peer only for runs like it
    if peer and model == "nin_d2l" and spec.input_size == (224, 224) and device == "cpu" and precision == "float32":
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


def derive(record: dict, peak_gflops: float | None) -> dict:
    """GFLOP/s and fractions of peak from the timings and the spec's MACs (no fractions
    without a peak: every probe failed)."""
    flops = 2 * record["macs_per_example"] * record["batch_size"]
    out = dict(record, peak_gflops=peak_gflops)
    out["images_per_s"] = record["batch_size"] / record["forward_s"]
    out["forward_gflops"] = flops / record["forward_s"] / 1e9
    if "train_step_s" in record:
        out["train_images_per_s"] = record["batch_size"] / record["train_step_s"]
        out["train_gflops"] = 3 * flops / record["train_step_s"] / 1e9
    if peak_gflops:
        out["forward_peak_fraction"] = out["forward_gflops"] / peak_gflops
        if "train_gflops" in out:
            out["peak_fraction"] = out["train_gflops"] / peak_gflops
    return out


def _in_subprocess(task: str, kwargs: dict, env: dict) -> dict:
    """``task(**kwargs)`` (one of ``_TASKS``) in a fresh ``python -m nin.bench``: its JSON
    result, or ``{"error": the last line it wrote to stderr}``."""
    proc = subprocess.run(
        [sys.executable, "-m", "nin.bench", task, json.dumps(kwargs)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}, no output"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    precision: str = "float32",
    peak_sizes=PEAK_SIZES,
    log=print,
    peak: dict | None = None,
) -> dict:
    """Every GEMM probe and every case in its own subprocess; a failed one is reported, not
    fatal.  On the CPU the probes are NumPy's and each benchmarked framework's GEMM; on a GPU,
    those of ``GPU_PROBES``.  ``peak`` reuses the probes of an earlier result of the same
    session (``peak_of(result)``) instead of measuring them again."""
    threads = threads or os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3")
    if peak is None:
        probed = list(GPU_PROBES) if device == "gpu" else ["numpy", *backends]
        peak = machine_peak(probed, device, precision, threads, list(peak_sizes), env, log)
    log(_peak_summary(peak))
    records = []
    for model in models:
        for backend in backends:
            for batch_size in batch_sizes:
                case = {"backend": backend, "model": model, "batch_size": batch_size}
                args = dict(case, input_size=input_size, device=device, precision=precision, threads=threads)
                out = _in_subprocess("case", dict(args, warmup=warmup, repeats=repeats, peer=peer), env)
                record = dict(case, precision=precision, **out) if "error" in out else derive(out, peak["peak_gflops"])
                records.append(record)
                log(_one_line(record))
    return {
        "machine": machine_description(),
        "device": device,
        "precision": precision,
        **peak,
        "threads": threads,
        "records": records,
    }


def peak_of(result: dict) -> dict:
    """The machine-peak part of a ``bench`` result, to hand to another ``bench`` call."""
    return {key: result[key] for key in ("peak_gflops", "peak_probe", "peak_probes", "peak_probe_errors")}


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


def _percent(r: dict, key: str) -> str:
    """A fraction of peak as "85%", or "-" where there is none."""
    return f"{100 * r[key]:.0f}%" if key in r else "-"


def _one_line(r: dict) -> str:
    if "error" in r:
        return f"{r['backend']:>10} {r['model']} b{r['batch_size']}: FAILED {r['error']}"
    train = (
        f", train step {r['train_step_s']:.3f} s ({_percent(r, 'peak_fraction')} of peak)"
        if "train_step_s" in r
        else ""
    )
    return (
        f"{r['backend']:>10} {r['model']} b{r['batch_size']}: forward {1e3 * r['forward_s']:.1f} ms "
        f"({_percent(r, 'forward_peak_fraction')} of peak){train}"
    )


def _peak(result: dict) -> str:
    """ "peak 93 GFLOP/s from the torch GEMM", or that there is none."""
    if result["peak_probe"] is None:
        return "no peak: every GEMM probe failed"
    return f"peak {result['peak_gflops']:.0f} GFLOP/s from the {result['peak_probe']} GEMM"


def _peak_summary(result: dict) -> str:
    """The peak, what every GEMM probe measured, and which were skipped."""
    details = []
    if result["peak_probes"]:
        details.append(", ".join(f"{name} {gflops:.0f}" for name, gflops in result["peak_probes"].items()) + " GFLOP/s")
    if result["peak_probe_errors"]:
        details.append("skipped: " + ", ".join(result["peak_probe_errors"]))
    return f"{_peak(result)} ({'; '.join(details)})"


def run_heading(result: dict) -> str:
    return (
        f"{result['machine']}; {result['device']}, {result['precision']}; {_peak_summary(result)}; "
        f"{result['threads']} threads"
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
                _percent(r, "forward_peak_fraction"),
                f"{r['train_step_s']:.3f}" if "train_step_s" in r else "-",
                _percent(r, "peak_fraction"),
                f"{r['first_call_s']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{1e3 * r['peer_forward_s']:.1f}" if "peer_forward_s" in r else "-",
                f"{r['peer_train_step_s']:.3f}" if "peer_train_step_s" in r else "-",
            )
        )
    return rows


def bench_text(result: dict) -> str:
    return run_heading(result) + "\n\n" + text_table(HEADER, _rows(result), right=tuple(range(2, 12)))


def bench_markdown(result: dict) -> str:
    return f"Measured on {run_heading(result)}.\n\n" + markdown_table(HEADER, _rows(result), right=tuple(range(2, 12)))


def bench_plot(result: dict, path: str | Path) -> Path:
    """Bar chart: achieved fraction of peak, forward and training step, per backend/model/batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in result["records"] if "error" not in r]
    labels = [f"{r['backend']}\n{r['model']}\nb{r['batch_size']}" for r in ok]
    xs = np.arange(len(ok))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(ok)), 4.5))
    ax.bar(xs - 0.2, [100 * r.get("forward_peak_fraction", 0) for r in ok], 0.4, label="forward (eval)")
    ax.bar(xs + 0.2, [100 * r.get("peak_fraction", 0) for r in ok], 0.4, label="training step")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel(f"% of {_peak(result)}")
    ax.set_title(result["machine"], fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_TASKS = {"case": run_case, "probe": peak_probe}

if __name__ == "__main__":
    from .errors import NinError

    try:
        print(json.dumps(_TASKS[sys.argv[1]](**json.loads(sys.argv[2]))))
    except NinError as e:  # a message for the record, not a traceback
        sys.exit(str(e))
