"""Data-parallel parity on one host: ``nin train`` through a backend's own data-parallel engine
at each world size, every run's final weights and momentum compared tensor by tensor with the
NumPy oracle (``nin.train.NumpyTrainer``: ``sgd_reference`` in float64) trained on the same data
with the same recipe.  ``benchmarks/gpu_check.sh`` runs it on the GPU; it runs on the CPU too.

    python benchmarks/dp_parity.py --backend torch --device gpu --world-sizes 1 2 --out DIR [--timeout S]

The run: one epoch of nin_tiny on the synthetic 3×16×16 set (512 training and 128 test images)
at global batch 64, so eight steps, every one in the warmup (a new rate each step: a momentum
kept as ``−lr·b`` or a gradient averaged over the wrong count shows).  World size 1 runs the
engine itself (``--rank 0 --world-size 1 --coordinator``; ``--workers 1`` would be the plain
trainer); N ≥ 2 runs ``--workers N``, the local launcher, whose rank 0 must report N workers.
On one GPU, N torch workers share it (their collectives then go through gloo:
``nin.frameworks.torch.distributed.process_group_backend``).

Tolerances, per tensor, those of the K-step contract of every trainer against the same oracle
(tests/test_train_backends.py, where they are derived): weights max|Δ| ≤ 1e-4 · max|w|,
momentum buffers ≤ 1e-3 · max|b|; each epoch's mean training and test loss within 1e-4
relative (``FORWARD_RTOL``: a GPU's float32 convolutions may take Winograd or FFT paths).
World size N is also compared with world size 1 at the same tolerances.

Prints one verdict line per world size (ok, mismatch naming the worst tensor, failed, timed out)
and writes DIR/parity.json.  Exit status: 0 when every run matches, 1 when one does not, 2 when
one failed or timed out.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from nin.conformance import max_rel_error
from nin.distributed import free_ports
from nin.loaders import load_dataset
from nin.train import NumpyTrainer, Recipe, fit, load_checkpoint
from nin.zoo import get_spec

MODEL = "nin_tiny"
DATA = "synthetic:3x16x16"
RECIPE = Recipe(batch_size=64, epochs=1)
TOLERANCES = {"weights": 1e-4, "momentum": 1e-3}
LOSS_RTOL = 1e-4
LOSSES = ("train_loss", "test_loss")


def train_command(backend: str, device: str, world_size: int, out: Path) -> list[str]:
    """``nin train`` of the parity run at ``world_size`` through the data-parallel engine."""
    command = [
        sys.executable, "-m", "nin.cli", "train", "--backend", backend, "--model", MODEL, "--data", DATA,
        "--epochs", str(RECIPE.epochs), "--batch-size", str(RECIPE.batch_size), "--device", device,
        "--no-progress", "--out", str(out),
    ]  # fmt: skip
    if world_size == 1:
        return [*command, "--rank", "0", "--world-size", "1", "--coordinator", f"127.0.0.1:{free_ports(1)[0]}"]
    return [*command, "--workers", str(world_size)]


def run(command: list[str], log: Path, timeout_s: float) -> tuple[str, str]:
    """Run ``command`` with its output in ``log``; (status, its standard output).  On timeout it
    gets SIGTERM (the launcher then stops its workers), then SIGKILL."""
    with log.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            stdout, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            return f"timed out after {timeout_s:.0f} s", ""
    if proc.returncode:
        lines = log.read_text().strip().splitlines()
        return f"failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}", stdout
    return "ok", stdout


def compare(got: dict, want: dict, what: str) -> tuple[list[str], dict]:
    """Per tensor, ``got``'s state against ``want``'s: (what exceeds its tolerance, the worst
    first; the largest error of each part with its tensor)."""
    excess, worst = [], {}
    for part, rtol in TOLERANCES.items():
        errors = {name: max_rel_error(got[part][name], ref) for name, ref in want[part].items()}
        name = max(errors, key=errors.get)
        worst[part] = {"tensor": name, "error": errors[name], "tolerance": rtol}
        excess += [(e / rtol, f"{part} {n}: {e:.2e}·max|ref| vs {what}, allowed {rtol:.0e}") for n, e in errors.items()]
    return [text for ratio, text in sorted(excess, reverse=True) if ratio > 1], worst


def _loss_problems(history: list[dict], reference: list[dict]) -> list[str]:
    return [
        f"epoch {i + 1} {key}: {got[key]:.6g}, oracle {ref[key]:.6g}"
        for i, (got, ref) in enumerate(zip(history, reference, strict=True))
        for key in LOSSES
        if abs(got[key] - ref[key]) > LOSS_RTOL * abs(ref[key])
    ]


def check_world(backend: str, device: str, world_size: int, out: Path, oracle, timeout_s: float) -> dict:
    """One world size: train, then compare with the oracle; its record, verdict included."""
    folder = out / f"world{world_size}"
    start = time.monotonic()
    status, stdout = run(train_command(backend, device, world_size, folder), out / f"world{world_size}.log", timeout_s)
    record = {"world_size": world_size, "seconds": round(time.monotonic() - start, 1)}
    if status != "ok":
        return dict(record, verdict=status)
    problems = []
    if world_size > 1 and f"({world_size} workers)" not in stdout:
        problems.append(f"rank 0 did not report {world_size} workers: {stdout.strip()[-200:]!r}")
    checkpoint = load_checkpoint(folder / "checkpoint.npz")
    if checkpoint.meta["recipe"] != RECIPE.to_json():
        problems.append(f"trained with recipe {checkpoint.meta['recipe']}, not {RECIPE.to_json()}")
    found, worst = compare(checkpoint.state, oracle["state"], "the oracle")
    problems += found + _loss_problems(checkpoint.meta["history"], oracle["history"])
    record.update(worst=worst, problems=problems, state=checkpoint.state)
    record["verdict"] = (
        "ok"
        if not problems
        else f"mismatch: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True)
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2], metavar="N")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--timeout", type=float, default=120, metavar="S", help="seconds for each training run")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.world_sizes):
        parser.error(f"--world-sizes must be ≥ 1; got {args.world_sizes}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = get_spec(MODEL)
    dataset = load_dataset(DATA, input_size=spec.input_size)
    spec = get_spec(MODEL, in_channels=dataset.in_channels, num_classes=dataset.num_classes, input_size=spec.input_size)
    trainer = NumpyTrainer(spec, RECIPE)
    history = fit(trainer, dataset, RECIPE, out / "oracle", progress=False)
    oracle = {"state": trainer.export_state(), "history": history}
    records = []
    for world_size in args.world_sizes:
        record = check_world(args.backend, args.device, world_size, out, oracle, args.timeout)
        first = next((r for r in records if "state" in r), None)
        if "state" in record and first is not None and first["world_size"] != world_size:
            found, worst = compare(record["state"], first["state"], f"world size {first['world_size']}")
            record[f"vs_world{first['world_size']}"] = worst
            if found and record["verdict"] == "ok":
                record["verdict"] = f"mismatch: {found[0]}"
        records.append(record)
        figures = ", ".join(f"{part} {w['error']:.1e} ({w['tensor']})" for part, w in record.get("worst", {}).items())
        print(
            f"{args.backend} on {args.device}, world size {world_size}: {record['verdict']} in {record['seconds']} s"
            + (f"; largest error vs the oracle per part: {figures}" if figures else ""),
            flush=True,
        )
    for record in records:
        record.pop("state", None)
    result = {"backend": args.backend, "device": args.device, "model": MODEL, "data": DATA, "records": records}
    (out / "parity.json").write_text(json.dumps(dict(result, recipe=RECIPE.to_json()), indent=2) + "\n")
    verdicts = [r["verdict"] for r in records]
    if any(not (v == "ok" or v.startswith("mismatch")) for v in verdicts):
        return 2
    return 1 if any(v.startswith("mismatch") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
