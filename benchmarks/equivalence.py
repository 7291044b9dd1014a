"""Does the framework change training?  Ten seeds per framework with the shared recipe, and an
equivalence test between every pair of frameworks (issue 23 item 5; the table is in docs/training.md).

    # train: one `nin train` per (backend, seed), --jobs at a time, one thread each
    .venv/bin/python benchmarks/equivalence.py run --backends torch tensorflow jax mxnet --out runs/equivalence
    .venv-current/bin/python benchmarks/equivalence.py run --backends paddle mlx --out runs/equivalence
    # the statistics and the tables, from the runs' metrics.jsonl (any environment with SciPy)
    .venv/bin/python benchmarks/equivalence.py report runs/equivalence --json docs/data/equivalence.json

Seed S gives every framework the same initial weights (``nin.init_weights``) and the same batches in
the same order (the recipe's seeded shuffle), so the runs are **paired by seed**: what differs between
framework A's run S and framework B's run S is only the arithmetic of the frameworks (summation order,
kernels).  The test is therefore Schuirmann's two one-sided tests (TOST) on the per-seed differences
``d_S = acc_A(S) - acc_B(S)`` (a paired t-test each way): H0 is |mean d| >= margin (0.5 points by default),
and the pair is *equivalent* at level alpha when both one-sided nulls are rejected, i.e. when
p = max(p_lower, p_upper) < alpha — the same verdict as the (1 - 2·alpha) confidence interval of the
mean difference lying inside ±margin.  Every pair of frameworks is tested, so the report also gives each paired p after Holm's step-down
adjustment over all the pairs (the family-wise reading).  The report also gives Welch's unpaired TOST, which does not rely
on the pairing and is the conservative reading.  Where every d_S is equal (standard deviation 0) the
t statistic is undefined; the verdict is then exact: p = 0 when |d| < margin, else 1.

A run counts only when its metrics.jsonl holds every epoch of the recipe; ``run`` resumes a run that
was interrupted (its checkpoint) and skips the finished ones, so it can be stopped and started again,
and several ``run``s over one folder share the work (each run is claimed by a ``.running`` file).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

EPOCHS = 10  # the shared recipe's default (nin.train.Recipe)
MARGIN = 0.5  # percentage points
ALPHA = 0.05


# -- the statistics --------------------------------------------------------------------------


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.sf(t, df))


@dataclass(frozen=True)
class Tost:
    """Two one-sided tests of |mean difference| < margin, in percentage points."""

    n: int
    mean_diff: float  # mean of acc_A - acc_B, points
    sd_diff: float  # sample standard deviation of the differences (paired) or pooled description (Welch)
    df: float
    p_lower: float  # H0: mean_diff <= -margin
    p_upper: float  # H0: mean_diff >= +margin
    ci_low: float  # the (1 - 2·alpha) confidence interval of the mean difference
    ci_high: float

    @property
    def p(self) -> float:
        return max(self.p_lower, self.p_upper)

    def equivalent(self, alpha: float = ALPHA) -> bool:
        return self.p < alpha


def _tost(mean: float, se: float, df: float, n: int, sd: float, margin: float, alpha: float) -> Tost:
    if se == 0.0:  # every difference equal: the verdict is exact
        p = 0.0 if abs(mean) < margin else 1.0
        return Tost(n, mean, sd, df, p, p, mean, mean)
    from scipy import stats

    p_lower = _t_sf((mean + margin) / se, df)  # reject mean <= -margin when (mean + margin)/se is large
    p_upper = _t_sf((margin - mean) / se, df)  # reject mean >= +margin when (margin - mean)/se is large
    half = float(stats.t.ppf(1 - alpha, df)) * se
    return Tost(n, mean, sd, df, p_lower, p_upper, mean - half, mean + half)


def paired_tost(a: np.ndarray, b: np.ndarray, margin: float = MARGIN, alpha: float = ALPHA) -> Tost:
    """TOST on the paired differences a - b (same seeds, in the same order)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"paired TOST needs two equally long samples of at least 2; got {a.size} and {b.size}")
    d = a - b
    n = d.size
    sd = float(np.std(d, ddof=1))
    return _tost(float(d.mean()), sd / math.sqrt(n), n - 1, n, sd, margin, alpha)


def welch_tost(a: np.ndarray, b: np.ndarray, margin: float = MARGIN, alpha: float = ALPHA) -> Tost:
    """TOST on the difference of means of two independent samples (Welch-Satterthwaite df)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's TOST needs two samples of at least 2; got {a.size} and {b.size}")
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else float(a.size + b.size - 2)
    sd = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    return _tost(float(a.mean() - b.mean()), se, df, min(a.size, b.size), sd, margin, alpha)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (in their order): the family of pairs keeps its
    error rate at alpha when each adjusted p is compared with alpha."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# -- the runs --------------------------------------------------------------------------------


def final_accuracy(run_dir: Path, epochs: int = EPOCHS) -> float | None:
    """The final test accuracy in percent of a finished run, or None where it has not finished."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists():
        return None
    history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not history or history[-1].get("epoch") != epochs:
        return None
    return 100.0 * float(history[-1]["test_acc"])


def _command(backend: str, seed: int, folder: Path, epochs: int) -> list[str]:
    cmd = [sys.executable, "-m", "nin", "train", "--backend", backend, "--seed", str(seed), "--epochs", str(epochs),
           "--out", str(folder), "--no-progress"]  # fmt: skip
    if (folder / "checkpoint.npz").exists():
        cmd.append("--resume")
    return cmd


def _claim(folder: Path) -> bool:
    """Take the run in ``folder`` for this process (``folder/.running`` holds its pid), unless a
    live process holds it: two `run`s over the same folder share the work instead of repeating it."""
    lock = folder / ".running"
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False  # its holder is alive
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # its holder died: take it over
                continue
            except PermissionError:
                return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def run(backends: list[str], seeds: list[int], out: Path, jobs: int, epochs: int) -> int:
    """Train every (backend, seed) that has no finished run in ``out``, ``jobs`` processes at a
    time, skipping those another `run` is training."""
    from nin.frameworks import thread_env

    todo = [(b, s) for b in backends for s in seeds if final_accuracy(out / b / f"seed{s}", epochs) is None]
    print(f"{len(todo)} runs to do, {jobs} at a time, one thread each", flush=True)
    running: list[tuple[str, int, subprocess.Popen, float, object]] = []
    failed = 0
    while todo or running:
        while todo and len(running) < jobs:
            backend, seed = todo.pop(0)
            folder = out / backend / f"seed{seed}"
            if final_accuracy(folder, epochs) is not None or not _claim(folder):
                continue  # finished or taken by another run since the list was made
            log = open(folder / "train.log", "a")
            env = {**os.environ, **thread_env(backend, 1)}
            proc = subprocess.Popen(
                _command(backend, seed, folder, epochs), stdout=log, stderr=subprocess.STDOUT, env=env
            )
            running.append((backend, seed, proc, time.monotonic(), log))
        time.sleep(1.0)
        for item in list(running):
            backend, seed, proc, start, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            folder = out / backend / f"seed{seed}"
            (folder / ".running").unlink(missing_ok=True)
            acc = final_accuracy(folder, epochs)
            took = time.monotonic() - start
            if proc.returncode or acc is None:
                failed += 1
                print(f"{backend} seed {seed}: FAILED (exit {proc.returncode}; see {folder / 'train.log'})", flush=True)
            else:
                print(f"{backend} seed {seed}: {acc:.2f} % in {took:.0f} s", flush=True)
    return 1 if failed else 0


# -- the report ------------------------------------------------------------------------------


def collect(folders: list[Path], epochs: int) -> dict[str, dict[int, float]]:
    """backend -> seed -> final test accuracy (percent), from every finished run under the folders."""
    found: dict[str, dict[int, float]] = {}
    for folder in folders:
        for seed_dir in sorted(folder.glob("*/seed*")):
            acc = final_accuracy(seed_dir, epochs)
            if acc is not None:
                found.setdefault(seed_dir.parent.name, {})[int(seed_dir.name[4:])] = acc
    return dict(sorted(found.items(), key=lambda item: (_order(item[0]), item[0])))


def _order(backend: str) -> int:
    """Where a backend stands in the registry's listings (its record's ``order``)."""
    from nin.frameworks import backend_record

    try:
        return backend_record(backend).order
    except Exception:  # a folder of runs from a backend this installation does not know
        return 1000


def report(accuracy: dict[str, dict[int, float]], margin: float, alpha: float) -> dict:
    per_backend = {
        b: {
            "seeds": sorted(accs),
            "accuracy": [accs[s] for s in sorted(accs)],
            "median": float(np.median(list(accs.values()))),
            "min": min(accs.values()),
            "max": max(accs.values()),
            "mean": float(np.mean(list(accs.values()))),
            "std": float(np.std(list(accs.values()), ddof=1)) if len(accs) > 1 else 0.0,
        }
        for b, accs in accuracy.items()
    }
    pairs = []
    for a, b in itertools.combinations(accuracy, 2):
        common = sorted(set(accuracy[a]) & set(accuracy[b]))
        if len(common) < 2:
            continue
        xa = np.array([accuracy[a][s] for s in common])
        xb = np.array([accuracy[b][s] for s in common])
        paired, welch = paired_tost(xa, xb, margin, alpha), welch_tost(xa, xb, margin, alpha)
        pairs.append({
            "a": a, "b": b, "seeds": common,
            "paired": {**asdict(paired), "p": paired.p, "equivalent": paired.equivalent(alpha)},
            "welch": {**asdict(welch), "p": welch.p, "equivalent": welch.equivalent(alpha)},
            "same_final_accuracy": int(np.sum(xa == xb)),
        })  # fmt: skip
    for pair, adjusted in zip(pairs, holm([pair["paired"]["p"] for pair in pairs]), strict=True):
        pair["paired"]["p_holm"] = adjusted
        pair["paired"]["equivalent_holm"] = adjusted < alpha
    return {"margin_points": margin, "alpha": alpha, "epochs": EPOCHS, "backends": per_backend, "pairs": pairs}


def markdown(result: dict) -> str:
    from nin.tables import markdown_table

    rows = [
        (
            b,
            len(r["seeds"]),
            f"{r['median']:.2f}",
            f"{r['min']:.2f}",
            f"{r['max']:.2f}",
            f"{r['mean']:.2f} ± {r['std']:.2f}",
        )
        for b, r in result["backends"].items()
    ]
    per = markdown_table(
        ("framework", "seeds", "median %", "min %", "max %", "mean ± sd %"), rows, right=(1, 2, 3, 4, 5)
    )
    rows = []
    for pair in result["pairs"]:
        p, w = pair["paired"], pair["welch"]
        rows.append((
            f"{pair['a']} – {pair['b']}", f"{p['mean_diff']:+.2f}", f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]",
            f"{p['p_lower']:.2g} / {p['p_upper']:.2g}", "yes" if p["equivalent"] else "**no**",
            f"{p['p_holm']:.2g}" + ("" if p["equivalent_holm"] else " **no**"),
            f"{w['p']:.2g}", "yes" if w["equivalent"] else "**no**", f"{pair['same_final_accuracy']}/{len(pair['seeds'])}",
        ))  # fmt: skip
    ci = int(round(100 * (1 - 2 * result["alpha"])))
    header = ("pair", "mean diff (points)", f"{ci} % CI", "paired p (lower / upper)", "equivalent (paired)",
              "Holm-adjusted p (paired)", "Welch p", "equivalent (Welch)", "seeds with equal accuracy")  # fmt: skip
    pairs = markdown_table(header, rows)
    return f"{per}\n\nTOST at ±{result['margin_points']} points, alpha {result['alpha']}:\n\n{pairs}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the runs that are missing")
    r.add_argument("--backends", nargs="+", required=True)
    r.add_argument("--seeds", default="0-9")
    r.add_argument("--epochs", type=int, default=EPOCHS)
    r.add_argument("--jobs", type=int, default=2, help="processes at a time (one thread each)")
    r.add_argument("--out", type=Path, default=Path("runs/equivalence"))
    p = sub.add_parser("report", help="the statistics and tables from finished runs")
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--margin", type=float, default=MARGIN, help="equivalence margin, percentage points")
    p.add_argument("--alpha", type=float, default=ALPHA)
    p.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.command == "run":
        from nin.train import parse_seeds

        return run(args.backends, parse_seeds(args.seeds), args.out, args.jobs, args.epochs)
    accuracy = collect(args.folders, EPOCHS)
    if not accuracy:
        print(f"no finished runs under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 1
    result = report(accuracy, args.margin, args.alpha)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
