"""How cost grows with work: a batch-size sweep and an input-size sweep of the forward pass
and training step, per backend, plotted as achieved GFLOP/s (flat = compute-bound; rising =
per-call overhead dominating the small cases).

    .venv/bin/python benchmarks/sweep.py [--backends ...] [--model nin_d2l] [--out runs/sweep]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nin.bench import bench  # noqa: E402
from nin.frameworks import available_backends  # noqa: E402


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
    by_batch = bench(args.backends, [args.model], args.batch_sizes, repeats=args.repeats, peer=False, log=log)
    by_size = [
        bench(args.backends, [args.model], [8], input_size=(s, s), repeats=args.repeats, peer=False, log=log)
        for s in args.input_sizes
    ]
    (out / "sweep.json").write_text(json.dumps({"batch": by_batch, "input": by_size}, indent=2))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for backend in args.backends:
        recs = [r for r in by_batch["records"] if r["backend"] == backend and "error" not in r]
        axes[0].plot([r["batch_size"] for r in recs], [r.get("train_gflops", 0) for r in recs], "o-", label=backend)
        recs = [r for res in by_size for r in res["records"] if r["backend"] == backend and "error" not in r]
        axes[1].plot([r["input_size"][0] for r in recs], [r.get("train_gflops", 0) for r in recs], "o-", label=backend)
    for ax, xlabel in zip(axes, ("batch size (224×224)", "input size (batch 8)"), strict=True):
        if by_batch["peak_gflops"]:
            peak = f"{by_batch['peak_probe']} GEMM peak"
            ax.axhline(by_batch["peak_gflops"], color="grey", ls="--", lw=1, label=peak)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training step GFLOP/s")
        ax.legend(fontsize=8)
    fig.suptitle(f"{args.model}: {by_batch['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=110)
    print(out / "sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
