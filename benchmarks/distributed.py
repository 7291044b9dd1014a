"""Data-parallel speed on one host: a training epoch of ``nin_mnist`` on ``mnist5k`` (4,000
digits, the default recipe: batch 8, 500 steps) in one process with 2 threads against two
worker processes (``nin train --workers 2``) with 1 thread each, for every backend, in one run.

    .venv/bin/python benchmarks/distributed.py [--backends ...] [--batch-size 8] [--data mnist5k] [--out runs/distributed]

Threads are set with ``OMP_NUM_THREADS`` (PyTorch's and oneDNN's pools, and MXNet's);
TensorFlow's and XLA's own pools are sized to the cores whatever it says, so on a 2-core
machine "1 thread" bounds only part of those two.  The epoch time is rank 0's training pass
(``seconds`` in metrics.jsonl: no start-up, no evaluation); the wall time of the whole command
is reported beside it.  Results go to OUT/distributed.json and OUT/distributed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from nin.bench import machine_description
from nin.frameworks import available_backends
from nin.tables import markdown_table

LAYOUTS = ((1, 2), (2, 1))  # (workers, threads per worker)


def run(backend: str, workers: int, threads: int, batch_size: int, data: str, out: Path) -> dict:
    folder = out / f"{backend}_{workers}x{threads}"
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        sys.executable, "-m", "nin.cli", "train", "--backend", backend, "--model", "nin_mnist", "--data", data,
        "--epochs", "1", "--batch-size", str(batch_size), "--no-progress", "--out", str(folder),
        "--workers", str(workers),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]}
    record = json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])
    return {
        "epoch_s": record["seconds"],
        "wall_s": wall,
        "train_loss": record["train_loss"],
        "test_acc": record["test_acc"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=available_backends())
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", default="mnist5k", help="mnist5k, or synthetic (512 images: a shorter epoch)")
    parser.add_argument("--out", default="runs/distributed")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    rows = []
    for backend in args.backends:
        results[backend] = {}
        for workers, threads in LAYOUTS:
            result = run(backend, workers, threads, args.batch_size, args.data, out)
            results[backend][f"{workers}x{threads}"] = result
            print(f"{backend} {workers} worker(s) × {threads} thread(s): {result}", file=sys.stderr, flush=True)
        one, two = results[backend]["1x2"], results[backend]["2x1"]
        if "error" in one or "error" in two:
            rows.append((backend, "error", "error", "", ""))
            continue
        rows.append(
            (
                backend,
                f"{one['epoch_s']:.1f} s ({one['wall_s']:.0f} s)",
                f"{two['epoch_s']:.1f} s ({two['wall_s']:.0f} s)",
                f"{one['epoch_s'] / two['epoch_s']:.2f}×",
                f"{one['test_acc']:.4f} / {two['test_acc']:.4f}",
            )
        )
    header = ("backend", "1 worker × 2 threads", "2 workers × 1 thread", "speed-up", "test acc (1 / 2)")
    table = markdown_table(header, rows)
    summary = {"machine": machine_description(), "data": args.data, "batch_size": args.batch_size, "results": results}
    (out / "distributed.json").write_text(json.dumps(summary, indent=2))
    (out / "distributed.md").write_text(table + "\n")
    print(table)
    return 0 if all("error" not in r for b in results.values() for r in b.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
