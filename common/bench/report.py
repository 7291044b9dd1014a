"""``nin bench``'s reports: a run's heading, its table as text or Markdown (the CPU's columns
with the book's code as the peer, or the GPU's), the agreement of two runs as Markdown, and
reading a run back from its ``--json`` file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..tables import markdown_table, text_table
from .records import Agreement, BenchResult, CaseRecord, Spread
from .rounds import DISTURBED


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _spread_cell(spread: Spread, fmt: Callable[[float], str]) -> str:
    """ "median (min–max)" of a spread."""
    return f"{fmt(spread.median)} ({fmt(spread.min)}–{fmt(spread.max)})"


def _ratio_cell(record: CaseRecord, name: str, fmt: Callable[[float], str]) -> str:
    """ "median (min–max)" of a per-round ratio, or "-" where there is none."""
    s = record.ratios.get(name)
    return _spread_cell(s, fmt) if s else "-"


def _times(record: CaseRecord, key: str, scale: float, digits: int) -> str:
    """ "median (min–max)" of a time, or "-"."""
    s = record.times.get(key)
    return _spread_cell(s, lambda v: f"{scale * v:.{digits}f}") if s else "-"


def _x(value: float) -> str:
    return f"{value:.2f}×"


def run_heading(result: BenchResult) -> str:
    probes = ", ".join(f"{name} {gflops:.0f}" for name, gflops in result.peak_probes.items())
    skipped = f"; probes skipped: {', '.join(result.peak_probe_errors)}" if result.peak_probe_errors else ""
    disturbed = ", ".join(str(i + 1) for i in result.disturbed_rounds) or "none"
    device = result.device
    if device == "gpu":  # which GPU, and the probes' sizes, which decide how near its peak they come
        names = sorted({r.setup.device_name for r in result.records if r.setup is not None})
        sizes = "², ".join(map(str, result.peak_sizes))
        device = f"gpu ({', '.join(names) or 'none ran'}; GEMM probes at {sizes}²)"
    return (
        f"{result.machine}; {device}, {result.precision}, {result.threads} threads; "
        f"{result.rounds} interleaved rounds of {result.warmup} untimed + {result.repeats} timed calls "
        f"per case; best GEMM probe per framework {probes} GFLOP/s{skipped}; "
        f"disturbed rounds (peak > {DISTURBED:.0%} below the best): {disturbed}"
    )


def _images_per_s(record: CaseRecord, time: str) -> str:
    value = record.images_per_s(time)
    return "-" if value is None else f"{value:.0f}"


def _most(record: CaseRecord, quantity: str) -> str:
    """The most of a per-round quantity (memory), or "-"."""
    return f"{max(record.rounds[quantity]):.0f}" if quantity in record.rounds else "-"


# every column of the results table: its title and its cell of a record
_COLUMNS: dict[str, Callable[[CaseRecord], object]] = {
    "backend": lambda r: r.backend,
    "model": lambda r: r.model,
    "batch": lambda r: r.batch_size,
    "forward ms": lambda r: _times(r, "forward_s", 1e3, 0),
    "forward img/s": lambda r: _images_per_s(r, "forward_s"),
    "fwd % of round peak": lambda r: _ratio_cell(r, "forward_peak_fraction", _percent),
    "train step s": lambda r: _times(r, "train_step_s", 1, 2),
    "train step ms": lambda r: _times(r, "train_step_s", 1e3, 1),
    "train img/s": lambda r: _images_per_s(r, "train_step_s"),
    "train % of round peak": lambda r: _ratio_cell(r, "train_peak_fraction", _percent),
    "book fwd ms": lambda r: _times(r, "book_forward_s", 1e3, 0),
    "book step s (plain SGD)": lambda r: _times(r, "book_train_step_s", 1, 2),
    "book step s (recipe SGD)": lambda r: _times(r, "book_recipe_train_step_s", 1, 2),
    "book train % of round peak": lambda r: _ratio_cell(r, "book_train_peak_fraction", _percent),
    "train vs book (plain)": lambda r: _ratio_cell(r, "train_vs_book", _x),
    "train vs book (equal work)": lambda r: _ratio_cell(r, "train_vs_book_recipe", _x),
    "1st call s": lambda r: f"{r.setup.first_call_s:.1f}",
    "RSS MB": lambda r: _most(r, "peak_rss_mb"),
    "device MB": lambda r: _most(r, "device_peak_mb"),
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


def _header(result: BenchResult) -> tuple[str, ...]:
    return GPU_HEADER if result.device == "gpu" else HEADER


def _rows(result: BenchResult) -> list[tuple]:
    header = _header(result)
    rows = []
    for r in result.records:
        if r.error is not None:
            rows.append((r.backend, r.model, r.batch_size, "FAILED: " + r.error[:60], *[""] * (len(header) - 4)))
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


def _footnote(result: BenchResult) -> str:
    return GPU_FOOTNOTE if result.device == "gpu" else FOOTNOTE


def bench_text(result: BenchResult) -> str:
    header = _header(result)
    table = text_table(header, _rows(result), right=tuple(range(2, len(header))))
    return f"{run_heading(result)}\n\n{table}\n\n{_footnote(result)}"


def bench_markdown(result: BenchResult) -> str:
    header = _header(result)
    table = markdown_table(header, _rows(result), right=tuple(range(2, len(header))))
    rounds = ", ".join(f"{p:.0f}" if p else "-" for p in result.round_peaks)
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


def load_result(path: str | Path) -> BenchResult:
    """A run that ``nin bench --json`` wrote (this version or an earlier one), with a clear
    error for anything else."""
    from ..errors import NinError

    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NinError(f"{path} does not exist; give the --json file of a finished `nin bench` run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NinError(f"{path} is not a JSON file ({e}); give the --json file of a `nin bench` run") from None
    if not isinstance(result, dict) or not isinstance(result.get("records"), list):
        raise NinError(f"{path} is JSON but not a `nin bench --json` result (it has no list of 'records')")
    try:
        return BenchResult.from_json(result)
    except (KeyError, TypeError, AttributeError) as e:
        raise NinError(
            f"{path} is JSON but not a `nin bench --json` result: a record lacks or mistypes {e}; "
            f"give the --json file of a `nin bench` run"
        ) from None


def agreement_markdown(result: Agreement) -> str:
    def cell(name: str, spread: Spread) -> str:
        return _spread_cell(spread, _percent if name.endswith("peak_fraction") else _x)

    header = ("backend", "model", "batch", "ratio", "run A median (min–max)", "run B median (min–max)", "agree")
    rows = [
        (row.backend, row.model, row.batch_size, RATIO_NAMES.get(row.ratio, row.ratio), cell(row.ratio, row.a),
         cell(row.ratio, row.b), "yes" if row.agree else "**no**")
        for row in result.rows
    ]  # fmt: skip
    agreed = sum(row.agree for row in result.rows)
    return (
        f"{markdown_table(header, rows, right=(2,))}\n\n{agreed} of {len(rows)} ratios agree "
        f"(each run's median inside the other's min–max over rounds).\n"
    )
