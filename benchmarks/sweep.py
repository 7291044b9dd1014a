"""How cost grows with work: a batch-size sweep and an input-size sweep of the forward pass
and training step, per backend, as achieved GFLOP/s (flat = compute-bound; rising = per-call
overhead dominating the small cases).  Writes ``sweep.json``, ``sweep.md`` (a table) and
``sweep.png`` (forward and training step against batch size and input size).

    .venv/bin/python benchmarks/sweep.py [--backends ...] [--model nin_d2l] [--out runs/sweep]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nin.bench import BenchConfig, BenchResult, run_bench, run_heading  # noqa: E402
from nin.frameworks import available_backends  # noqa: E402
from nin.tables import markdown_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=available_backends())
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 16, 32])
    parser.add_argument("--input-sizes", nargs="+", type=int, default=[96, 160, 224])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="runs/sweep")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    config = BenchConfig(tuple(args.backends), (args.model,), tuple(args.batch_sizes), repeats=args.repeats, peer=False)
    by_batch = run_bench(config, log=log).to_json()
    by_size = [
        run_bench(dataclasses.replace(config, batch_sizes=(8,), input_size=(s, s)), log=log).to_json()
        for s in args.input_sizes
    ]
    (out / "sweep.json").write_text(json.dumps({"batch": by_batch, "input": by_size}, indent=2))
    size_records = [r for res in by_size for r in res["records"]]
    (out / "sweep.md").write_text(sweep_markdown(args.model, by_batch, size_records))
    plot(args, by_batch, size_records, out / "sweep.png")
    print(out / "sweep.md")
    print(out / "sweep.png")
    return 0


def _ok(records: list[dict], backend: str) -> list[dict]:
    return [r for r in records if r["backend"] == backend and "error" not in r and "train_gflops" in r]


def sweep_markdown(model: str, by_batch: dict, size_records: list[dict]) -> str:
    """One row per (backend, case): forward and training-step time and GFLOP/s."""
    header = ("backend", "input", "batch", "forward ms", "fwd GFLOP/s", "train step s", "train GFLOP/s", "train img/s")
    rows = [
        (
            backend,
            "×".join(str(n) for n in r["input_size"]),
            r["batch_size"],
            f"{r['forward_s'] * 1e3:.1f}",
            f"{r['forward_gflops']:.0f}",
            f"{r['train_step_s']:.3f}",
            f"{r['train_gflops']:.0f}",
            f"{r['train_images_per_s']:.1f}",
        )
        for backend in dict.fromkeys(r["backend"] for r in by_batch["records"])
        for r in _ok(by_batch["records"], backend) + _ok(size_records, backend)
    ]
    return (
        f"{model}: {run_heading(BenchResult.from_json(by_batch))}.\n\n"
        + markdown_table(header, rows, right=range(2, 8))
        + "\n"
    )


def plot(args, by_batch: dict, size_records: list[dict], path: Path) -> None:
    """Forward (top) and training-step (bottom) GFLOP/s against batch size and input size."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for backend in args.backends:
        by_b, by_s = _ok(by_batch["records"], backend), _ok(size_records, backend)
        for row, key in enumerate(("forward_gflops", "train_gflops")):
            axes[row][0].plot([r["batch_size"] for r in by_b], [r[key] for r in by_b], "o-", label=backend)
            axes[row][1].plot([r["input_size"][-1] for r in by_s], [r[key] for r in by_s], "o-", label=backend)
    for row, what in enumerate(("forward", "training step")):
        for col, xlabel in enumerate(("batch size (224×224)", "input size (batch 8)")):
            ax = axes[row][col]
            if by_batch["peak_gflops"]:
                peak = f"{by_batch['peak_probe']} GEMM peak"
                ax.axhline(by_batch["peak_gflops"], color="grey", ls="--", lw=1, label=peak)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{what} GFLOP/s")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
    axes[0][0].set_xscale("log", base=2)
    axes[1][0].set_xscale("log", base=2)
    fig.suptitle(f"{args.model}: {by_batch['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
