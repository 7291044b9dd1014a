"""``nin bench``'s rounds and statistics: the run, configured by one ``BenchConfig``, timing
every case and GEMM probe once per round, round-robin; each case's times and per-round ratios
(share of the round's peak, the book's time over ours) with their median and min–max; the
disturbed rounds; and whether two runs agree (``agreement``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..zoo import get_spec
from .records import TRAIN_FLOPS_FACTOR, Agreement, AgreementRow, BenchResult, CaseRecord, Setup, Spread
from .workers import Worker, has_peer, peak_sizes, probe_dtype

# interleaved rounds: on the idle 2-core machine two runs of 5 agreed on 11–15 of their 20 ratios
# (medians drift between runs by more than 5 quiet rounds spread), two runs of 9 on 21 of 24
# (docs/benchmarks.md)
ROUNDS = 9
# a round whose peak is this far below the best round's is flagged as disturbed
DISTURBED = 0.2


@dataclass(frozen=True)
class BenchConfig:
    """What one ``nin bench`` run measures and how: the cases (backends × models × batch
    sizes, at ``input_size`` or each model's own), the device, precision and thread count
    (default all cores), the rounds and the calls per case per round (``warmup`` untimed,
    ``repeats`` timed), whether the d2l book's code runs beside ours (``peer``), and the GEMM
    probes' matrix sizes (default ``peak_sizes(device)``)."""

    backends: tuple[str, ...]
    models: tuple[str, ...] = ("nin_d2l",)
    batch_sizes: tuple[int, ...] = (32,)
    input_size: tuple[int, ...] | None = None
    device: str = "cpu"
    precision: str = "float32"
    threads: int | None = None
    rounds: int = ROUNDS
    warmup: int = 1
    repeats: int = 2
    peer: bool = True
    peak_sizes: tuple[int, ...] | None = None


def _peak_candidates(measured: dict[str, float], device: str, precision: str) -> dict[str, float]:
    """The probes ``{probe name: GFLOP/s}`` a peak is taken from: on the CPU all of them; on a
    GPU those in the run's ``precision`` (all where there are none), since a bfloat16 GEMM runs
    on tensor cores several times faster than a float32 one (TF32 off): each precision's share
    is of its own peak."""
    if device != "gpu":
        return measured
    return {name: v for name, v in measured.items() if probe_dtype(name) == precision} or measured


def round_peak(measured: dict[str, float], device: str, precision: str) -> float | None:
    """A round's peak in GFLOP/s from its probes ``{probe name: GFLOP/s}``: the best of
    ``_peak_candidates`` (None without any probe)."""
    candidates = _peak_candidates(measured, device, precision)
    return max(candidates.values()) if candidates else None


@dataclass
class _Case:
    """One row of the result: a backend's model at one batch size, and its book peer."""

    backend: str
    model: str
    batch_size: int
    ours: Worker
    book: Worker | None
    rounds: list[dict] = field(default_factory=list)


def _ratios(rounds: list[dict], flops: float, peaks: tuple[float | None, ...]) -> dict[str, list[float]]:
    """Per round (``peaks[i]`` is round i's): our share of that round's peak, and the book's
    time over ours."""
    out: dict[str, list[float]] = {}

    def put(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    train = TRAIN_FLOPS_FACTOR * flops
    for r in rounds:
        peak = peaks[r["round"]]
        if peak:
            put("forward_peak_fraction", flops / r["forward_s"] / 1e9 / peak)
            if "train_step_s" in r:
                put("train_peak_fraction", train / r["train_step_s"] / 1e9 / peak)
        if "book_forward_s" in r:
            put("forward_vs_book", r["book_forward_s"] / r["forward_s"])
            if "train_step_s" in r:
                put("train_vs_book", r["book_train_step_s"] / r["train_step_s"])
                put("train_vs_book_recipe", r["book_recipe_train_step_s"] / r["train_step_s"])
            if peak and "book_recipe_train_step_s" in r:
                # the book's equal-work step on the same scale: 1 / this bounds train_vs_book_recipe
                # for a step that cannot run faster than the peak
                put("book_train_peak_fraction", train / r["book_recipe_train_step_s"] / 1e9 / peak)
    return out


def _record(case: _Case, precision: str, peaks: tuple[float | None, ...]) -> CaseRecord:
    """A case's result: its setup, every time per round with median and min–max, its ratios."""
    head = (case.backend, case.model, case.batch_size, precision)
    if "error" in case.ours.setup:
        return CaseRecord(*head, error=case.ours.setup["error"])
    if case.ours.error:
        return CaseRecord(*head, error=case.ours.error)
    if not case.rounds:
        return CaseRecord(*head, error="no round completed")
    setup = Setup.from_json(case.ours.setup)
    rounds = {
        key: tuple(r[key] for r in case.rounds if key in r) for key in dict.fromkeys(k for r in case.rounds for k in r)
    }
    times = {key: Spread.of(values) for key, values in rounds.items() if key.endswith("_s")}
    flops = 2 * setup.macs_per_example * case.batch_size
    ratios = {name: Spread.of(values, keep_rounds=True) for name, values in _ratios(case.rounds, flops, peaks).items()}
    book_error = case.book.error if case.book is not None else None
    return CaseRecord(*head, setup=setup, book_error=book_error, rounds=rounds, times=times, ratios=ratios)


def run_bench(
    config: BenchConfig, log: Callable[[str], None] = print, on_round: Callable[[BenchResult], None] | None = None
) -> BenchResult:
    """Every case and every GEMM probe of ``config`` in its own warm worker, timed in
    ``config.rounds`` interleaved rounds; a case that fails is reported, not fatal.  On the CPU
    the probes are NumPy's and each benchmarked backend's GEMM; on a GPU, those of
    ``nin.frameworks.gpu_probes()``.  ``log`` gets a line per case set up and per round;
    ``on_round`` the result so far after every round (so an interrupted run leaves its finished
    rounds)."""
    backends, models, batch_sizes = list(config.backends), list(config.models), list(config.batch_sizes)
    input_size, device, precision, peer = config.input_size, config.device, config.precision, config.peer
    warmup, repeats, rounds, threads = config.warmup, config.repeats, config.rounds, config.threads
    sizes = config.peak_sizes
    from ..frameworks import backend_record, gpu_probes, thread_env

    threads = threads or os.cpu_count() or 1

    def env(name: str) -> dict:
        threaded = {"OMP_NUM_THREADS": str(threads)} if name == "numpy" else thread_env(name, threads)
        return dict(os.environ, **threaded)

    probed = gpu_probes() if device == "gpu" else ["numpy", *backends]
    common = {"device": device, "precision": precision, "threads": threads}
    sizes = list(sizes or peak_sizes(device))
    probes = {}
    for name in probed:
        probes[name] = Worker("probe", dict(common, framework=name, sizes=sizes), env(name))
        if "error" in probes[name].setup:
            log(f"GEMM probe {name}: skipped, {probes[name].setup['error']}")
    cases = []
    for model in models:
        spec = get_spec(model, input_size=tuple(input_size) if input_size else None)
        for backend in backends:
            for batch_size in batch_sizes:
                args = dict(common, backend=backend, model=model, batch_size=batch_size, input_size=input_size)
                ours = Worker("ours", args, env(backend))
                book = None
                if peer and has_peer(model, spec.input_size, device, precision) and "error" not in ours.setup:
                    if "d2l_book" in backend_record(backend).parts:
                        book = Worker("book", args, env(backend))
                cases.append(_Case(backend, model, batch_size, ours, book))
                log(_setup_line(cases[-1]))
    workers: list[tuple[str, object]] = [("probe", name) for name in probes]
    for i, case in enumerate(cases):
        workers.append(("ours", i))
        if case.book is not None:
            workers.append(("book", i))
    probe_rounds: list[dict[str, float]] = []

    def after(done: int) -> BenchResult:  # the result after ``done`` rounds
        return _result(config, threads, sizes, probes, probe_rounds, cases, done)

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


def _result(
    config: BenchConfig,
    threads: int,
    sizes: list[int],
    probes: dict[str, Worker],
    probe_rounds: list[dict[str, float]],
    cases: list[_Case],
    rounds: int,
) -> BenchResult:
    """The run after ``rounds`` rounds: each round's peak (the best probe, ``round_peak``), the
    disturbed rounds, every case's record."""
    device, precision = config.device, config.precision
    peaks = tuple(round_peak(measured, device, precision) for measured in probe_rounds)
    best_peak = max((p for p in peaks if p), default=None)
    disturbed = tuple(i for i, p in enumerate(peaks) if p and best_peak and p < (1 - DISTURBED) * best_peak)
    names = dict.fromkeys(name for measured in probe_rounds for name in measured)
    best_of = {name: max(m[name] for m in probe_rounds if name in m) for name in names}
    best = _peak_candidates(best_of, device, precision)
    return BenchResult(
        machine=machine_description(),
        device=device,
        precision=precision,
        threads=threads,
        rounds=rounds,
        warmup=config.warmup,
        repeats=config.repeats,
        peak_gflops=best_peak,
        peak_probe=max(best, key=best.get) if best else None,
        peak_probes=best_of,
        probe_rounds=tuple(probe_rounds),
        round_peaks=peaks,
        disturbed_rounds=disturbed,
        peak_probe_errors={name: w.setup["error"] for name, w in probes.items() if "error" in w.setup},
        records=tuple(_record(case, precision, peaks) for case in cases),
        peak_sizes=tuple(sizes),
    )


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


def agreement(a: BenchResult, b: BenchResult) -> Agreement:
    """Whether two runs agree: for every case both measured and every per-round ratio, each
    run's median lies inside the other's min–max over rounds (``AgreementRow.agree``)."""

    def ratios(result: BenchResult) -> dict[tuple, Spread]:
        return {
            (r.backend, r.model, r.batch_size, r.precision, name): spread
            for r in result.records
            for name, spread in r.ratios.items()
        }

    mine, theirs = ratios(a), ratios(b)
    return Agreement(tuple(AgreementRow(*key, mine[key], theirs[key]) for key in mine if key in theirs))
