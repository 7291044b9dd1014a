"""``nin bench``: the backends, the d2l book's code and the GEMM probes, timed in interleaved
rounds so that a shared machine's neighbours disturb every case alike.

The cases, each in its own warm worker process (``python -m nin.bench worker``):

* **ours**, per backend × model × batch size: the first call (build + first forward, tracing /
  compilation included) and the first training step once; then, every round, eval-mode
  forward latency and the backend's own ``Trainer.step`` (forward + backward + SGD with
  momentum and weight decay);
* **book**, per backend, for ``nin_d2l`` in float32 on the CPU: the d2l book's own NiN code for
  that framework (``frameworks/<name>/d2l_book.py``) on the same inputs: its forward, its
  training step with the plain SGD the book uses, and with the recipe's SGD (momentum and
  weight decay), so that one ratio compares equal work;
* **probe**, per framework (NumPy and each benchmarked backend, or on a GPU those of
  ``nin.frameworks.gpu_probes()``): the best of ``PEAK_REPEATS`` n×n GEMMs at each n of
  ``PEAK_SIZES`` on the CPU, of ``GPU_PEAK_SIZES`` on a GPU (``peak_sizes``).

Every round runs every case once, round-robin, each round starting one case further along
the list (so no case always follows the same neighbour).  A call is timed until the backend's
``synchronize`` returns (MXNet's engine runs a step's backward and update after the step has
returned its loss: unsynchronised, they ran on into the next case's time); within a round a case makes ``warmup`` untimed calls, then
``repeats`` timed ones, and reports their median.  Workers stay alive across rounds: a
respawned worker would rebuild and recompile every round, which measures the first call again
rather than the steady step a training run repeats thousands of times; an idle worker blocks
on its pipe and takes no CPU.

Reported per case: the median and min–max over rounds of every time; and per round the
ratios that a shared machine cannot skew — the book's time over ours (≥ 1 means ours is
faster), and our achieved GFLOP/s (from the spec's multiply-accumulates: a forward is 2·MACs
FLOPs per example, a training step 3× a forward) over the same round's peak, the best of that
round's probes (on a GPU, the best in the run's precision: ``round_peak``) — with their median
and min–max; and images per second.  A round whose peak is more than
``DISTURBED`` below the best round's is flagged as disturbed.

Every worker gets the same thread count (``--threads``, default all cores): in its
environment before the framework is imported (``nin.frameworks.thread_env``: OpenMP, XLA's
``NPROC``, TensorFlow's pools) and through the backend's ``set_threads`` after (importing
MXNet drops PyTorch to one thread).  ``precision="bf16"`` measures mixed precision where the
backend has it (``nin.frameworks.backend_precisions``); its probes add bfloat16 GEMMs.

The package, one job per module: ``nin.bench.workers`` (the worker processes and their
messages), ``nin.bench.rounds`` (``BenchConfig``, the rounds and the statistics, agreement),
``nin.bench.records`` (the typed records of a run and their JSON form), ``nin.bench.report``
(tables, reading a saved run), ``nin.bench.plot`` (the picture) and
``nin.bench.command`` (the ``nin bench`` command).
"""

from __future__ import annotations

from .records import Agreement, AgreementRow, BenchResult, CaseRecord, Setup, Spread
from .report import agreement_markdown, bench_markdown, bench_text, load_result, run_heading
from .rounds import DISTURBED, ROUNDS, BenchConfig, agreement, machine_description, round_peak, run_bench
from .workers import GPU_PEAK_SIZES, PEAK_REPEATS, PEAK_SIZES, gemm_gflops, has_peer, peak_rss_mb, peak_sizes


def bench_plot(result: dict, path):
    """``nin.bench.plot.bench_plot``, imported when a plot is drawn (it needs matplotlib)."""
    from .plot import bench_plot

    return bench_plot(result, path)


__all__ = [
    "Agreement",
    "AgreementRow",
    "BenchResult",
    "CaseRecord",
    "Setup",
    "Spread",
    "DISTURBED",
    "GPU_PEAK_SIZES",
    "PEAK_REPEATS",
    "PEAK_SIZES",
    "ROUNDS",
    "BenchConfig",
    "agreement",
    "agreement_markdown",
    "bench_markdown",
    "bench_plot",
    "bench_text",
    "gemm_gflops",
    "has_peer",
    "load_result",
    "machine_description",
    "peak_rss_mb",
    "peak_sizes",
    "round_peak",
    "run_bench",
    "run_heading",
]
