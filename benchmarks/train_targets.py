"""Issue target: every backend trains the default model (nin_mnist) on the 5,000 MNIST digits
to ≥ 97% test accuracy in ≤ 10 epochs on this CPU; report seconds per epoch side by side.

    .venv/bin/python benchmarks/train_targets.py [--backends ...] [--epochs 10] [--out runs/targets]

Each backend trains in its own subprocess (`nin train`), with the same recipe, seed and
batches; results go to OUT/targets.json and OUT/targets.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from nin.bench import machine_description
from nin.frameworks import available_backends
from nin.tables import markdown_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=available_backends())
    parser.add_argument("--model", default="nin_mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/targets")
    args = parser.parse_args()
    out = Path(args.out)
    rows, results = [], {}
    for backend in args.backends:
        run_dir = out / backend
        cmd = [sys.executable, "-m", "nin.cli", "train", "--backend", backend, "--model", args.model,
               "--data", "mnist5k", "--epochs", str(args.epochs), "--out", str(run_dir), "--no-progress"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{backend}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
            results[backend] = {"error": proc.stderr.strip().splitlines()[-1:]}
            continue
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        seconds = [h["seconds"] for h in history]
        best = next((h["epoch"] for h in history if h["test_acc"] >= 0.97), None)
        results[backend] = {"history": history, "final_test_acc": history[-1]["test_acc"], "epoch_reaching_97": best}
        rows.append((
            backend, f"{history[-1]['test_acc']:.4f}", best or "not reached",
            f"{sum(seconds[1:]) / max(len(seconds) - 1, 1):.1f}", f"{seconds[0]:.1f}", f"{sum(seconds):.0f}",
        ))  # fmt: skip
        print(f"{backend}: test accuracy {history[-1]['test_acc']:.4f}, ≥97% from epoch {best}", file=sys.stderr)
    header = ("backend", "final test acc", "≥ 97% at epoch", "s / epoch (2nd on)", "1st epoch s", "total s")
    table = markdown_table(header, rows, right=(1, 2, 3, 4, 5))
    machine = machine_description()
    out.mkdir(parents=True, exist_ok=True)
    (out / "targets.json").write_text(
        json.dumps({"machine": machine, "model": args.model, "results": results}, indent=2)
    )
    (out / "targets.md").write_text(
        f"{args.model} on mnist5k, {args.epochs} epochs, default recipe; {machine}\n\n{table}\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
