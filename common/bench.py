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
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .shapes import mac_count
from .tables import markdown_table, text_table
from .zoo import get_spec

PEAK_SIZES = (2048,)
# a GPU's GEMMs reach their peak only on large matrices: an H100 multiplies two 2048² float32
# matrices in well under a millisecond, where launch and synchronisation weigh in; 16384² takes
# 8.8 TFLOP (a few GiB of device memory per probe process)
GPU_PEAK_SIZES = (8192, 16384)
PEAK_REPEATS = 3
# interleaved rounds: on the idle 2-core machine two runs of 5 agreed on 11–15 of their 20 ratios
# (medians drift between runs by more than 5 quiet rounds spread), two runs of 9 on 21 of 24
# (docs/benchmarks.md)
ROUNDS = 9
# a round whose peak is this far below the best round's is flagged as disturbed
DISTURBED = 0.2


# -- in a worker process ----------------------------------------------------------------------------


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_time(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(_timed(fn) for _ in range(repeats))


def _probe_name(framework: str, dtype: str) -> str:
    return framework if dtype == "float32" else f"{framework} {dtype}"


def _probe_dtype(name: str) -> str:
    """The dtype of a probe named by ``_probe_name``."""
    return name.rpartition(" ")[2] if " " in name else "float32"


def peak_sizes(device: str) -> tuple[int, ...]:
    """The matrix sizes of the GEMM probes on ``device``: ``PEAK_SIZES`` on the CPU,
    ``GPU_PEAK_SIZES`` on a GPU."""
    return GPU_PEAK_SIZES if device == "gpu" else PEAK_SIZES


def _peak_candidates(measured: dict[str, float], device: str, precision: str) -> dict[str, float]:
    """The probes ``{probe name: GFLOP/s}`` a peak is taken from: on the CPU all of them; on a
    GPU those in the run's ``precision`` (all where there are none), since a bfloat16 GEMM runs
    on tensor cores several times faster than a float32 one (TF32 off): each precision's share
    is of its own peak."""
    if device != "gpu":
        return measured
    return {name: v for name, v in measured.items() if _probe_dtype(name) == precision} or measured


def round_peak(measured: dict[str, float], device: str, precision: str) -> float | None:
    """A round's peak in GFLOP/s from its probes ``{probe name: GFLOP/s}``: the best of
    ``_peak_candidates`` (None without any probe)."""
    candidates = _peak_candidates(measured, device, precision)
    return max(candidates.values()) if candidates else None


class _Probe:
    """One framework's GEMMs: ``measure`` gives ``{probe name: GFLOP/s}``, for each dtype the
    best over ``sizes`` of the best of ``PEAK_REPEATS`` products (after one untimed).  One
    random pair at the smallest size, tiled up to each larger one, serves every size and dtype:
    drawing 2·16384² normal floats takes 10 s or more, tiling a fraction of one (a GEMM's speed
    does not depend on its values)."""

    def __init__(self, framework: str, device: str, precision: str, threads: int, sizes: list[int]):
        from .frameworks import backend_precisions, get_backend

        dtypes = ["float32"]
        if framework != "numpy":
            adapter = get_backend(framework)
            adapter.set_threads(threads)
            adapter.device_name(device)  # a device this framework cannot use fails here, before any work
            if precision != "float32" and precision in backend_precisions(framework):
                dtypes.append(precision)
        rng = np.random.default_rng(0)
        smallest = min(sizes)
        pair = [rng.standard_normal((smallest, smallest), dtype=np.float32) for _ in range(2)]
        self.products: dict[str, list[tuple[int, Callable[[], object]]]] = {}
        for dtype in dtypes:
            calls = []
            for n in sizes:
                reps = -(-n // smallest)
                a, b = (np.ascontiguousarray(np.tile(m, (reps, reps))[:n, :n]) for m in pair)
                product = (lambda a=a, b=b: a @ b) if framework == "numpy" else adapter.gemm_probe(a, b, device, dtype)
                calls.append((n, product))
            self.products[_probe_name(framework, dtype)] = calls
        self.setup: dict = {}

    def measure(self, warmup: int, repeats: int) -> dict:
        """``{probe name: GFLOP/s}``; ``warmup`` and ``repeats`` are the cases' and do not
        apply: a probe takes one untimed product and the best of ``PEAK_REPEATS``."""
        return {
            name: max(2 * n**3 / self._best(call) / 1e9 for n, call in calls) for name, calls in self.products.items()
        }

    @staticmethod
    def _best(call: Callable[[], object]) -> float:
        call()
        return min(_timed(call) for _ in range(PEAK_REPEATS))


def gemm_gflops(
    framework: str, device: str = "cpu", precision: str = "float32", threads: int | None = None, sizes=None
) -> dict[str, float]:
    """``{probe name: GFLOP/s}`` of ``framework``'s GEMM ("numpy" or a backend) in this
    process: float32, and bfloat16 too for a bf16 ``precision`` where the backend has it;
    ``sizes`` by default ``peak_sizes(device)``."""
    sizes = list(sizes or peak_sizes(device))
    return _Probe(framework, device, precision, threads or os.cpu_count() or 1, sizes).measure(0, 0)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def has_peer(model: str, input_size: tuple[int, ...], device: str, precision: str) -> bool:
    """Whether the book's code is a peer: it is ``nin_d2l`` at 224×224, float32, on the CPU."""
    return model == "nin_d2l" and tuple(input_size) == (224, 224) and device == "cpu" and precision == "float32"


def _batch(spec, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    from .conformance import sample_batch

    return sample_batch(spec, batch_size), (np.arange(batch_size) % spec.num_classes).astype(np.int64)


class _Ours:
    """A backend's model and ``Trainer``; setup records the first call and first step."""

    def __init__(self, backend, model, batch_size, input_size, device, precision, threads):
        from .frameworks import backend_trains, get_backend
        from .train import Recipe

        spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
        adapter = get_backend(backend)
        adapter.set_threads(threads)
        self.x, self.y = _batch(spec, batch_size)
        self.setup = {
            "framework": adapter.framework_version(),
            "device_name": adapter.device_name(device),
            "input_size": list(spec.input_size),
            "macs_per_example": mac_count(spec),
        }
        start = time.perf_counter()
        self.net = adapter.build(spec, seed=0, device=device, precision=precision)
        adapter.forward(self.net, self.x)
        self.setup["first_call_s"] = time.perf_counter() - start
        self.adapter, self.device, self.trainer = adapter, device, None
        if not backend_trains(backend):
            self.setup["train_note"] = f"the {backend} backend has no Trainer (inference only): no training step"
            return
        self.trainer = adapter.Trainer(self.net, Recipe())
        start = time.perf_counter()
        self.trainer.step(self.x, self.y, 0.01)
        self.setup["first_train_step_s"] = time.perf_counter() - start

    def measure(self, warmup: int, repeats: int) -> dict:
        sync = self.adapter.synchronize
        forward = _median_time(lambda: (self.adapter.forward(self.net, self.x), sync()), warmup, repeats)
        out = {"forward_s": forward}
        if self.trainer is not None:
            step = _median_time(lambda: (self.trainer.step(self.x, self.y, 0.01), sync()), warmup, repeats)
            out["train_step_s"] = step
        out["peak_rss_mb"] = peak_rss_mb()
        peak = self.adapter.device_peak_mb(self.device)
        if peak is not None:
            out["device_peak_mb"] = peak
        return out


class _Book:
    """The d2l book's code: forward, a step with its plain SGD, one with the recipe's SGD."""

    def __init__(self, backend, model, batch_size, input_size, device, precision, threads):
        from .frameworks import get_backend, get_part
        from .train import Recipe

        adapter = get_backend(backend)  # the framework imported (and patched) as ours is
        adapter.set_threads(threads)
        self.sync = adapter.synchronize
        book = get_part(backend, "d2l_book")
        spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
        self.x, self.y = _batch(spec, batch_size)
        self.book, self.model = book, book.build()
        recipe = Recipe()
        self.plain = book.make_train_step(self.model, lr=0.01)
        self.recipe = book.make_train_step(
            self.model, lr=0.01, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
        book.forward(self.model, self.x)
        self.plain(self.x, self.y)
        self.recipe(self.x, self.y)
        self.setup = {}

    def measure(self, warmup: int, repeats: int) -> dict:
        x, y, sync = self.x, self.y, self.sync
        return {
            "book_forward_s": _median_time(lambda: (self.book.forward(self.model, x), sync()), warmup, repeats),
            "book_train_step_s": _median_time(lambda: (self.plain(x, y), sync()), warmup, repeats),
            "book_recipe_train_step_s": _median_time(lambda: (self.recipe(x, y), sync()), warmup, repeats),
        }


_ROLES = {"probe": _Probe, "ours": _Ours, "book": _Book}


def _serve() -> None:
    """A worker: the first line on stdin sets it up (``{"role": ..., **arguments}``), and it
    answers its setup record; each later line asks for one round (``{"warmup", "repeats"}``)
    and gets that round's timings.  Errors are answered as ``{"error": message}``."""
    from .errors import NinError

    def answer(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    args = json.loads(sys.stdin.readline())
    try:
        case = _ROLES[args.pop("role")](**args)
    except NinError as e:  # a message for the record, not a traceback
        answer({"error": str(e)})
        return
    except Exception as e:  # one broken case must not end the run
        answer({"error": f"{type(e).__name__}: {e}"})
        raise
    answer(case.setup)
    for line in sys.stdin:
        answer(case.measure(**json.loads(line)))


# -- in the parent --------------------------------------------------------------------------------


class _Worker:
    """A warm worker process for one case: ``start`` sets it up, ``round`` times it once."""

    def __init__(self, role: str, args: dict, env: dict):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nin.bench", "worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self.error: str | None = None
        self.setup = self._ask(dict(args, role=role))

    def _ask(self, message: dict) -> dict:
        if self.error:
            return {"error": self.error}
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        reply = json.loads(line) if line else {"error": self._last_words()}
        if "error" in reply:
            self.error = reply["error"]
            self.close()
        return reply

    def _last_words(self) -> str:
        self.proc.wait()
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return lines[-1] if lines else f"exit status {self.proc.returncode}, no output"

    def round(self, warmup: int, repeats: int) -> dict:
        return self._ask({"warmup": warmup, "repeats": repeats})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        self._stderr.close()


@dataclass
class _Case:
    """One row of the result: a backend's model at one batch size, and its book peer."""

    backend: str
    model: str
    batch_size: int
    ours: _Worker
    book: _Worker | None
    rounds: list[dict] = field(default_factory=list)


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratios(rounds: list[dict], flops: float, peaks: list[float | None]) -> dict[str, list[float]]:
    """Per round (``peaks[i]`` is round i's): our share of that round's peak, and the book's
    time over ours."""
    out: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    for r in rounds:
        peak = peaks[r["round"]]
        if peak:
            put("forward_peak_fraction", flops / r["forward_s"] / 1e9 / peak)
            if "train_step_s" in r:
                put("train_peak_fraction", 3 * flops / r["train_step_s"] / 1e9 / peak)
        if "book_forward_s" in r:
            put("forward_vs_book", r["book_forward_s"] / r["forward_s"])
            if "train_step_s" in r:
                put("train_vs_book", r["book_train_step_s"] / r["train_step_s"])
                put("train_vs_book_recipe", r["book_recipe_train_step_s"] / r["train_step_s"])
            if peak and "book_recipe_train_step_s" in r:
                # the book's equal-work step on the same scale: 1 / this bounds train_vs_book_recipe
                # for a step that cannot run faster than the peak
                put("book_train_peak_fraction", 3 * flops / r["book_recipe_train_step_s"] / 1e9 / peak)
    return out


def _record(case: _Case, precision: str, peaks: list[float | None]) -> dict:
    """A case's result: its setup, every time per round with median and min–max, its ratios."""
    head = {"backend": case.backend, "model": case.model, "batch_size": case.batch_size, "precision": precision}
    if "error" in case.ours.setup:
        return dict(head, error=case.ours.setup["error"])
    if case.ours.error:
        return dict(head, error=case.ours.error)
    record = dict(head, **case.ours.setup)
    if case.book is not None and case.book.error:
        record["book_error"] = case.book.error
    rounds = case.rounds
    if not rounds:
        return dict(head, error="no round completed")
    flops = 2 * record["macs_per_example"] * case.batch_size
    record["rounds"] = {
        key: [r[key] for r in rounds if key in r] for key in dict.fromkeys(k for r in rounds for k in r)
    }
    for key, values in record["rounds"].items():
        if not key.endswith("_s"):
            continue
        s = _spread(values)
        record.update({key: s["median"], f"{key.removesuffix('_s')}_min_s": s["min"]})
        record[f"{key.removesuffix('_s')}_max_s"] = s["max"]
    record["forward_gflops"] = flops / record["forward_s"] / 1e9
    record["images_per_s"] = case.batch_size / record["forward_s"]
    if "train_step_s" in record:
        record["train_gflops"] = 3 * flops / record["train_step_s"] / 1e9
        record["train_images_per_s"] = case.batch_size / record["train_step_s"]
    per_round = _ratios(rounds, flops, peaks)
    record["ratios"] = {name: dict(_spread(values), rounds=values) for name, values in per_round.items()}
    return record


def bench(
    backends: list[str],
    models: list[str],
    batch_sizes: list[int],
    input_size=None,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 1,
    repeats: int = 2,
    peer: bool = True,
    precision: str = "float32",
    sizes: tuple[int, ...] | None = None,
    rounds: int = ROUNDS,
    log=print,
    on_round: Callable[[dict], None] | None = None,
) -> dict:
    """Every case and every GEMM probe in its own warm worker, timed in ``rounds`` interleaved
    rounds; a case that fails is reported, not fatal.  On the CPU the probes are NumPy's and
    each benchmarked backend's GEMM; on a GPU, those of ``nin.frameworks.gpu_probes()``; at
    ``sizes``, by default ``peak_sizes(device)``.  ``on_round`` gets the result so far after every
    round (so an interrupted run leaves its finished rounds)."""
    from .frameworks import backend_record, gpu_probes, thread_env

    threads = threads or os.cpu_count() or 1

    def env(name: str) -> dict:
        threaded = {"OMP_NUM_THREADS": str(threads)} if name == "numpy" else thread_env(name, threads)
        return dict(os.environ, **threaded)

    probed = gpu_probes() if device == "gpu" else ["numpy", *backends]
    common = {"device": device, "precision": precision, "threads": threads}
    sizes = list(sizes or peak_sizes(device))
    probes = {}
    for name in probed:
        probes[name] = _Worker("probe", dict(common, framework=name, sizes=sizes), env(name))
        if "error" in probes[name].setup:
            log(f"GEMM probe {name}: skipped, {probes[name].setup['error']}")
    cases = []
    for model in models:
        spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
        for backend in backends:
            for batch_size in batch_sizes:
                args = dict(common, backend=backend, model=model, batch_size=batch_size, input_size=input_size)
                ours = _Worker("ours", args, env(backend))
                book = None
                if peer and has_peer(model, spec.input_size, device, precision) and "error" not in ours.setup:
                    if "d2l_book" in backend_record(backend).parts:
                        book = _Worker("book", args, env(backend))
                cases.append(_Case(backend, model, batch_size, ours, book))
                log(_setup_line(cases[-1]))
    workers: list[tuple[str, object]] = [("probe", name) for name in probes]
    for i, case in enumerate(cases):
        workers.append(("ours", i))
        if case.book is not None:
            workers.append(("book", i))
    probe_rounds: list[dict[str, float]] = []

    def after(done: int) -> dict:  # the result after ``done`` rounds
        result = _result(probed, probes, probe_rounds, cases, common, done, warmup, repeats)
        return dict(result, peak_sizes=sizes)

    for r in range(rounds):
        measured: dict[str, float] = {}
        results: dict[tuple[str, int], dict] = {}
        for k in range(len(workers)):
            kind, key = workers[(r + k) % len(workers)]
            if kind == "probe":
                out = probes[key].round(warmup, repeats)
                if "error" not in out:
                    measured.update(out)
            else:
                case = cases[key]
                results[kind, key] = (case.ours if kind == "ours" else case.book).round(warmup, repeats)
        for i, case in enumerate(cases):
            ours, book = results.get(("ours", i), {"error": "not run"}), results.get(("book", i), {})
            if "error" not in ours:
                case.rounds.append(dict(ours, round=r, **({} if "error" in book else book)))
        probe_rounds.append(measured)
        log(f"round {r + 1}/{rounds}: " + _round_line(round_peak(measured, device, precision), cases, r))
        if on_round is not None and r + 1 < rounds:
            on_round(after(r + 1))
    for worker in [*probes.values(), *(c.ours for c in cases), *(c.book for c in cases if c.book)]:
        worker.close()
    return after(rounds)


def _result(probed, probes, probe_rounds, cases, common, rounds, warmup, repeats) -> dict:
    peaks = [round_peak(measured, common["device"], common["precision"]) for measured in probe_rounds]
    best_peak = max((p for p in peaks if p), default=None)
    disturbed = [i for i, p in enumerate(peaks) if p and best_peak and p < (1 - DISTURBED) * best_peak]
    names = list(dict.fromkeys(name for measured in probe_rounds for name in measured))
    probe_spreads = {name: _spread([m[name] for m in probe_rounds if name in m]) for name in names}
    best = _peak_candidates(
        {name: s["max"] for name, s in probe_spreads.items()}, common["device"], common["precision"]
    )
    best_probe = max(best, key=best.get) if best else None
    return {
        "machine": machine_description(),
        **common,
        "rounds": rounds,
        "warmup": warmup,
        "repeats": repeats,
        "peak_gflops": best_peak,
        "peak_probe": best_probe,
        "peak_probes": {name: s["max"] for name, s in probe_spreads.items()},
        "probe_rounds": probe_rounds,
        "round_peaks": peaks,
        "disturbed_rounds": disturbed,
        "peak_probe_errors": {name: w.setup["error"] for name, w in probes.items() if "error" in w.setup},
        "records": [_record(case, common["precision"], peaks) for case in cases],
    }


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


# -- reports --------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _spread_cell(spread: dict, fmt: Callable[[float], str]) -> str:
    """ "median (min–max)" of a per-round ratio's spread."""
    return f"{fmt(spread['median'])} ({fmt(spread['min'])}–{fmt(spread['max'])})"


def _ratio_cell(record: dict, name: str, fmt: Callable[[float], str]) -> str:
    """ "median (min–max)" of a per-round ratio, or "-" where there is none."""
    s = record.get("ratios", {}).get(name)
    return _spread_cell(s, fmt) if s else "-"


def _times(record: dict, key: str, scale: float, digits: int) -> str:
    """ "median (min–max)" of a time, or "-"."""
    if key not in record:
        return "-"
    stem = key.removesuffix("_s")
    values = (record[key], record[f"{stem}_min_s"], record[f"{stem}_max_s"])
    median, low, high = (f"{scale * v:.{digits}f}" for v in values)
    return f"{median} ({low}–{high})"


def _x(value: float) -> str:
    return f"{value:.2f}×"


def _setup_line(case: _Case) -> str:
    head = f"{case.backend:>10} {case.model} b{case.batch_size}"
    if "error" in case.ours.setup:
        return f"{head}: FAILED {case.ours.setup['error']}"
    s = case.ours.setup
    line = f"{head}: first call {s['first_call_s']:.1f} s"
    if "first_train_step_s" in s:
        line += f", first step {s['first_train_step_s']:.1f} s"
    if case.book is not None:
        line += "; book: " + (f"FAILED {case.book.setup['error']}" if "error" in case.book.setup else "ready")
    return line


def _round_line(peak_gflops: float | None, cases: list[_Case], r: int) -> str:
    peak = f"peak {peak_gflops:.0f} GFLOP/s" if peak_gflops else "no probe"
    steps = [
        f"{c.backend} {c.rounds[-1]['train_step_s']:.2f} s"
        for c in cases
        if len(c.rounds) > r and "train_step_s" in c.rounds[-1]
    ]
    return ", ".join([peak, *steps])


def run_heading(result: dict) -> str:
    probes = ", ".join(f"{name} {gflops:.0f}" for name, gflops in result["peak_probes"].items())
    skipped = f"; probes skipped: {', '.join(result['peak_probe_errors'])}" if result["peak_probe_errors"] else ""
    disturbed = ", ".join(str(i + 1) for i in result["disturbed_rounds"]) or "none"
    device = result["device"]
    if device == "gpu":  # which GPU, and the probes' sizes, which decide how near its peak they come
        names = sorted({r["device_name"] for r in result["records"] if "device_name" in r})
        sizes = "², ".join(map(str, result.get("peak_sizes", ())))
        device = f"gpu ({', '.join(names) or 'none ran'}; GEMM probes at {sizes}²)"
    return (
        f"{result['machine']}; {device}, {result['precision']}, {result['threads']} threads; "
        f"{result['rounds']} interleaved rounds of {result['warmup']} untimed + {result['repeats']} timed calls "
        f"per case; best GEMM probe per framework {probes} GFLOP/s{skipped}; "
        f"disturbed rounds (peak > {DISTURBED:.0%} below the best): {disturbed}"
    )


def _images_per_s(record: dict, key: str) -> str:
    return f"{record[key]:.0f}" if key in record else "-"


# every column of the results table: its title and its cell of a record
_COLUMNS: dict[str, Callable[[dict], object]] = {
    "backend": lambda r: r["backend"],
    "model": lambda r: r["model"],
    "batch": lambda r: r["batch_size"],
    "forward ms": lambda r: _times(r, "forward_s", 1e3, 0),
    "forward img/s": lambda r: _images_per_s(r, "images_per_s"),
    "fwd % of round peak": lambda r: _ratio_cell(r, "forward_peak_fraction", _percent),
    "train step s": lambda r: _times(r, "train_step_s", 1, 2),
    "train step ms": lambda r: _times(r, "train_step_s", 1e3, 1),
    "train img/s": lambda r: _images_per_s(r, "train_images_per_s"),
    "train % of round peak": lambda r: _ratio_cell(r, "train_peak_fraction", _percent),
    "book fwd ms": lambda r: _times(r, "book_forward_s", 1e3, 0),
    "book step s (plain SGD)": lambda r: _times(r, "book_train_step_s", 1, 2),
    "book step s (recipe SGD)": lambda r: _times(r, "book_recipe_train_step_s", 1, 2),
    "book train % of round peak": lambda r: _ratio_cell(r, "book_train_peak_fraction", _percent),
    "train vs book (plain)": lambda r: _ratio_cell(r, "train_vs_book", _x),
    "train vs book (equal work)": lambda r: _ratio_cell(r, "train_vs_book_recipe", _x),
    "1st call s": lambda r: f"{r['first_call_s']:.1f}",
    "RSS MB": lambda r: f"{max(r['rounds']['peak_rss_mb']):.0f}",
    "device MB": lambda r: f"{max(r['rounds']['device_peak_mb']):.0f}" if "device_peak_mb" in r["rounds"] else "-",
}
# on the CPU, the book's code is the peer; on a GPU (no peer), images per second and device memory
HEADER = (
    "backend", "model", "batch", "forward ms", "fwd % of round peak", "train step s", "train % of round peak",
    "book fwd ms", "book step s (plain SGD)", "book step s (recipe SGD)", "book train % of round peak",
    "train vs book (plain)", "train vs book (equal work)", "1st call s", "RSS MB",
)  # fmt: skip
GPU_HEADER = (
    "backend", "model", "batch", "forward ms", "forward img/s", "fwd % of round peak", "train step ms",
    "train img/s", "train % of round peak", "1st call s", "device MB",
)  # fmt: skip


def _header(result: dict) -> tuple[str, ...]:
    return GPU_HEADER if result["device"] == "gpu" else HEADER


def _rows(result: dict) -> list[tuple]:
    header = _header(result)
    rows = []
    for r in result["records"]:
        if "error" in r:
            rows.append(
                (r["backend"], r["model"], r["batch_size"], "FAILED: " + r["error"][:60], *[""] * (len(header) - 4))
            )
        else:
            rows.append(tuple(_COLUMNS[title](r) for title in header))
    return rows


FOOTNOTE = (
    "Times: median (min–max) over rounds. Ratios are per round, then median (min–max): "
    "'% of round peak' is achieved GFLOP/s over the best GEMM probe of the same round; "
    "'vs book' is the book's step time over ours (> 1: ours is faster); 'equal work' times the "
    "book's code with the recipe's SGD (momentum and weight decay), as our Trainer does; 'book train "
    "% of round peak' is that step's share, so a step at 100 % of the peak is at most 1/(that share) "
    "ahead of the book."
)
GPU_FOOTNOTE = (
    "Times: median (min–max) over rounds; images per second from the median times. Ratios are per "
    "round, then median (min–max): '% of round peak' is achieved GFLOP/s over the best GEMM probe "
    "of the same round in the run's precision (float32 with TF32 off, or bfloat16). 'device MB': the "
    "most device memory the case's process held."
)


def _footnote(result: dict) -> str:
    return GPU_FOOTNOTE if result["device"] == "gpu" else FOOTNOTE


def bench_text(result: dict) -> str:
    header = _header(result)
    table = text_table(header, _rows(result), right=tuple(range(2, len(header))))
    return f"{run_heading(result)}\n\n{table}\n\n{_footnote(result)}"


def bench_markdown(result: dict) -> str:
    header = _header(result)
    table = markdown_table(header, _rows(result), right=tuple(range(2, len(header))))
    rounds = ", ".join(f"{p:.0f}" if p else "-" for p in result["round_peaks"])
    return (
        f"Measured on {run_heading(result)}.\n\n{table}\n\n{_footnote(result)}\n\n"
        f"Peak of each round (GFLOP/s, best probe): {rounds}.\n"
    )


RATIO_NAMES = {
    "forward_peak_fraction": "forward, share of round peak",
    "train_peak_fraction": "train step, share of round peak",
    "forward_vs_book": "forward vs book",
    "train_vs_book": "train step vs book (plain SGD)",
    "train_vs_book_recipe": "train step vs book (equal work)",
    "book_train_peak_fraction": "book's equal-work step, share of round peak",
}


def load_result(path: str | Path) -> dict:
    """A run that ``nin bench --json`` wrote, with a clear error for anything else."""
    from .errors import NinError

    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NinError(f"{path} does not exist; give the --json file of a finished `nin bench` run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NinError(f"{path} is not a JSON file ({e}); give the --json file of a `nin bench` run") from None
    if not isinstance(result, dict) or not isinstance(result.get("records"), list):
        raise NinError(f"{path} is JSON but not a `nin bench --json` result (it has no list of 'records')")
    return result


def agreement(a: dict, b: dict) -> dict:
    """Whether two runs agree: for every case both measured and every per-round ratio, each
    run's median lies inside the other's min–max over rounds.  ``rows`` lists them all;
    ``agree`` is True when every row agrees and the runs share at least one ratio."""

    def ratios(result: dict) -> dict[tuple, dict]:
        return {
            (r["backend"], r["model"], r["batch_size"], r.get("precision", "float32"), name): spread
            for r in result["records"]
            for name, spread in r.get("ratios", {}).items()
        }

    mine, theirs = ratios(a), ratios(b)
    rows = []
    for key in [k for k in mine if k in theirs]:
        x, y = mine[key], theirs[key]
        inside = x["min"] <= y["median"] <= x["max"] and y["min"] <= x["median"] <= y["max"]
        rows.append({"case": key[:4], "ratio": key[4], "a": x, "b": y, "agree": inside})
    return {"rows": rows, "agree": bool(rows) and all(row["agree"] for row in rows)}


def agreement_markdown(result: dict) -> str:
    def cell(name: str, spread: dict) -> str:
        return _spread_cell(spread, _percent if name.endswith("peak_fraction") else _x)

    header = ("backend", "model", "batch", "ratio", "run A median (min–max)", "run B median (min–max)", "agree")
    rows = [
        (*row["case"][:3], RATIO_NAMES.get(row["ratio"], row["ratio"]), cell(row["ratio"], row["a"]),
         cell(row["ratio"], row["b"]), "yes" if row["agree"] else "**no**")
        for row in result["rows"]
    ]  # fmt: skip
    agreed = sum(row["agree"] for row in result["rows"])
    return (
        f"{markdown_table(header, rows, right=(2,))}\n\n{agreed} of {len(rows)} ratios agree "
        f"(each run's median inside the other's min–max over rounds).\n"
    )


def bench_plot(result: dict, path: str | Path) -> Path:
    """Two panels per case, each ratio as its per-round points and their median: share of the
    same round's peak (forward, training step), and the book's step time over ours."""
    from .extras import require_extra

    require_extra("pictures", "--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in result["records"] if "error" not in r]
    labels = [f"{r['backend']}\n{r['model']}\nb{r['batch_size']}" for r in ok]
    xs = np.arange(len(ok))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(9, 2.4 * len(ok)), 4.5))
    panels = (
        (left, (("forward_peak_fraction", "forward"), ("train_peak_fraction", "training step")), 100, "% of the same round's peak"),
        (right, (("train_vs_book", "vs book, plain SGD"), ("train_vs_book_recipe", "vs book, equal work")), 1, "book step time / ours"),
    )  # fmt: skip
    for ax, series, scale, ylabel in panels:
        for j, (name, label) in enumerate(series):
            offset = (j - 0.5) * 0.3
            for x, r in zip(xs, ok, strict=True):
                if name in r.get("ratios", {}):
                    values = scale * np.asarray(r["ratios"][name]["rounds"])
                    ax.scatter(np.full(len(values), x + offset), values, s=12, color=f"C{j}", alpha=0.6)
                    ax.hlines(np.median(values), x + offset - 0.12, x + offset + 0.12, color=f"C{j}")
            ax.scatter([], [], color=f"C{j}", label=label)
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    right.axhline(1.2, color="grey", lw=0.8, ls="--")
    left.axhline(80, color="grey", lw=0.8, ls="--")
    fig.suptitle(f"{result['machine']}; {result['rounds']} interleaved rounds", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    _serve()
