"""``nin bench``'s typed records and their JSON form: ``BenchResult`` (a run), ``CaseRecord``
(a backend's model at one batch size), ``Spread`` (a quantity over rounds) and ``Agreement``
(two runs side by side).

``to_json`` writes the ``--json`` file; ``from_json`` reads it back, as this version writes it
and as earlier ones did (docs/data/ holds such files): a field an earlier run lacks takes its
default, so ``nin bench --agree`` reads every run ever saved.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# a training step is 3× a forward's FLOPs (forward, and backward through activations and weights)
TRAIN_FLOPS_FACTOR = 3


@dataclass(frozen=True)
class Spread:
    """A quantity over rounds: its median and min–max, and, for a per-round ratio, the value
    of every round (``rounds``)."""

    median: float
    min: float
    max: float
    rounds: tuple[float, ...] = ()

    @classmethod
    def of(cls, values: Iterable[float], keep_rounds: bool = False) -> Spread:
        values = tuple(values)
        return cls(statistics.median(values), min(values), max(values), values if keep_rounds else ())

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies inside this min–max."""
        return self.min <= value <= self.max

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"median": self.median, "min": self.min, "max": self.max}
        return out | ({"rounds": list(self.rounds)} if self.rounds else {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Spread:
        return cls(data["median"], data["min"], data["max"], tuple(data.get("rounds", ())))


@dataclass(frozen=True)
class Setup:
    """What a case's worker reports once it is set up: the framework's version, the device,
    the input size, the spec's multiply-accumulates per example, and the first call and first
    training step (tracing and compilation included); ``train_note`` where it cannot train."""

    framework: str
    device_name: str
    input_size: tuple[int, ...]
    macs_per_example: int
    first_call_s: float
    first_train_step_s: float | None = None
    train_note: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Setup:
        return cls(
            data["framework"],
            data["device_name"],
            tuple(data["input_size"]),
            data["macs_per_example"],
            data["first_call_s"],
            data.get("first_train_step_s"),
            data.get("train_note"),
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "framework": self.framework,
            "device_name": self.device_name,
            "input_size": list(self.input_size),
            "macs_per_example": self.macs_per_example,
            "first_call_s": self.first_call_s,
        }
        optional = {"first_train_step_s": self.first_train_step_s, "train_note": self.train_note}
        return out | {key: value for key, value in optional.items() if value is not None}


# the times a case's rounds report (``*_s``); the others (``peak_rss_mb``, ``device_peak_mb``,
# ``round``) are kept per round only
def _is_time(name: str) -> bool:
    return name.endswith("_s")


@dataclass(frozen=True)
class CaseRecord:
    """A case's result: which case, and either its ``error`` or its ``setup``, the values of
    every round by quantity (``rounds``: ``forward_s``, ``train_step_s``, ``peak_rss_mb``, the
    book's times...), every time's ``Spread`` over rounds (``times``) and every per-round ratio's
    (``ratios``: ``train_peak_fraction``, ``train_vs_book``...)."""

    backend: str
    model: str
    batch_size: int
    precision: str = "float32"
    error: str | None = None
    setup: Setup | None = None
    book_error: str | None = None
    rounds: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    times: Mapping[str, Spread] = field(default_factory=dict)
    ratios: Mapping[str, Spread] = field(default_factory=dict)

    @property
    def flops(self) -> float:
        """The FLOPs of one forward of the batch: 2·MACs per example."""
        return 2 * self.setup.macs_per_example * self.batch_size

    def gflops(self, time: str) -> float | None:
        """Achieved GFLOP/s of ``forward_s`` or ``train_step_s`` at its median, or None."""
        if time not in self.times:
            return None
        factor = TRAIN_FLOPS_FACTOR if time == "train_step_s" else 1
        return factor * self.flops / self.times[time].median / 1e9

    def images_per_s(self, time: str) -> float | None:
        """Examples per second of ``forward_s`` or ``train_step_s`` at its median, or None."""
        return self.batch_size / self.times[time].median if time in self.times else None

    def to_json(self) -> dict[str, Any]:
        head = {
            "backend": self.backend,
            "model": self.model,
            "batch_size": self.batch_size,
            "precision": self.precision,
        }
        if self.error is not None:
            return head | {"error": self.error}
        out = head | self.setup.to_json()
        if self.book_error is not None:
            out["book_error"] = self.book_error
        out["rounds"] = {name: list(values) for name, values in self.rounds.items()}
        for name, spread in self.times.items():
            stem = name.removesuffix("_s")
            out |= {name: spread.median, f"{stem}_min_s": spread.min, f"{stem}_max_s": spread.max}
        out |= {"forward_gflops": self.gflops("forward_s"), "images_per_s": self.images_per_s("forward_s")}
        if "train_step_s" in self.times:
            out |= {
                "train_gflops": self.gflops("train_step_s"),
                "train_images_per_s": self.images_per_s("train_step_s"),
            }
        out["ratios"] = {name: spread.to_json() for name, spread in self.ratios.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseRecord:
        head = (data["backend"], data["model"], data["batch_size"], data.get("precision", "float32"))
        if "error" in data:
            return cls(*head, error=data["error"])
        rounds = {name: tuple(values) for name, values in data.get("rounds", {}).items()}
        times = {
            name: Spread(data[name], data[f"{name.removesuffix('_s')}_min_s"], data[f"{name.removesuffix('_s')}_max_s"])
            for name in rounds
            if _is_time(name) and name in data
        }
        ratios = {name: Spread.from_json(spread) for name, spread in data.get("ratios", {}).items()}
        setup = Setup.from_json(data) if "framework" in data else None
        return cls(*head, setup=setup, book_error=data.get("book_error"), rounds=rounds, times=times, ratios=ratios)


@dataclass(frozen=True)
class BenchResult:
    """A run: the machine and the run's settings, the GEMM probes (the best per probe, every
    round's, the peak of every round and the disturbed rounds) and one ``CaseRecord`` per case."""

    machine: str
    device: str
    precision: str
    threads: int
    rounds: int
    warmup: int
    repeats: int
    peak_gflops: float | None
    peak_probe: str | None
    peak_probes: Mapping[str, float]
    probe_rounds: tuple[Mapping[str, float], ...]
    round_peaks: tuple[float | None, ...]
    disturbed_rounds: tuple[int, ...]
    peak_probe_errors: Mapping[str, str]
    records: tuple[CaseRecord, ...]
    peak_sizes: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {
            "machine": self.machine,
            "device": self.device,
            "precision": self.precision,
            "threads": self.threads,
            "rounds": self.rounds,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "peak_gflops": self.peak_gflops,
            "peak_probe": self.peak_probe,
            "peak_probes": dict(self.peak_probes),
            "probe_rounds": [dict(measured) for measured in self.probe_rounds],
            "round_peaks": list(self.round_peaks),
            "disturbed_rounds": list(self.disturbed_rounds),
            "peak_probe_errors": dict(self.peak_probe_errors),
            "records": [record.to_json() for record in self.records],
        }
        return out | ({"peak_sizes": list(self.peak_sizes)} if self.peak_sizes else {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchResult:
        """A run as ``to_json`` wrote it, from this version or an earlier one (a field it lacks
        takes its default: runs before 2026-12-06 name no ``peak_sizes``)."""
        return cls(
            machine=data.get("machine", ""),
            device=data.get("device", "cpu"),
            precision=data.get("precision", "float32"),
            threads=data.get("threads", 0),
            rounds=data.get("rounds", 0),
            warmup=data.get("warmup", 0),
            repeats=data.get("repeats", 0),
            peak_gflops=data.get("peak_gflops"),
            peak_probe=data.get("peak_probe"),
            peak_probes=dict(data.get("peak_probes", {})),
            probe_rounds=tuple(data.get("probe_rounds", ())),
            round_peaks=tuple(data.get("round_peaks", ())),
            disturbed_rounds=tuple(data.get("disturbed_rounds", ())),
            peak_probe_errors=dict(data.get("peak_probe_errors", {})),
            records=tuple(CaseRecord.from_json(record) for record in data["records"]),
            peak_sizes=tuple(data.get("peak_sizes", ())),
        )


@dataclass(frozen=True)
class AgreementRow:
    """One ratio of one case that two runs both measured, and whether they agree on it."""

    backend: str
    model: str
    batch_size: int
    precision: str
    ratio: str
    a: Spread
    b: Spread

    @property
    def agree(self) -> bool:
        """Each run's median inside the other's min–max over rounds."""
        return self.a.holds(self.b.median) and self.b.holds(self.a.median)

    def to_json(self) -> dict[str, Any]:
        case = [self.backend, self.model, self.batch_size, self.precision]
        return {"case": case, "ratio": self.ratio, "a": self.a.to_json(), "b": self.b.to_json(), "agree": self.agree}


@dataclass(frozen=True)
class Agreement:
    """Every ratio two runs share (``rows``); they ``agree`` when they share one at least and
    agree on every one."""

    rows: tuple[AgreementRow, ...]

    @property
    def agree(self) -> bool:
        return bool(self.rows) and all(row.agree for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"rows": [row.to_json() for row in self.rows], "agree": self.agree}
