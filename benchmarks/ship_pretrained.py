"""Turn a finished ``nin train`` run into shipped weights: ``common/pretrained/<model>.safetensors``
and its entry in ``common/pretrained/manifest.json`` (sha256, the command, the data set and the
final test accuracy read from the run's ``metrics.jsonl``).

    .venv/bin/python benchmarks/ship_pretrained.py RUN_DIR --command "nin train ..." [--date YYYY-MM-DD]

The command is recorded as given: pass the exact one that produced RUN_DIR.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
from pathlib import Path

from nin.train import atomic_write, load_checkpoint
from nin.weights import save_weights, validate_weights
from nin.zoo import get_spec

FOLDER = Path(__file__).resolve().parent.parent / "common" / "pretrained"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a nin train --out folder")
    parser.add_argument("--command", required=True, help="the exact nin train command that made RUN")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    args = parser.parse_args()
    ckpt = load_checkpoint(args.run / "checkpoint.npz")
    meta = ckpt.meta
    model = meta["model"]
    spec = get_spec(model)
    last = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()][-1]
    file = FOLDER / f"{model}.safetensors"
    trained = (meta["in_channels"], tuple(meta["input_size"]), meta["num_classes"])
    if trained != (spec.in_channels, spec.input_size, spec.num_classes):
        raise SystemExit(
            f"{args.run} trained {model} at (channels, size, classes) {trained}; shipped weights fit the zoo's"
        )
    save_weights(validate_weights(spec, ckpt.state["weights"]), file)
    manifest_path = FOLDER / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[model] = {
        "file": file.name,
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "bytes": file.stat().st_size,
        "backend": meta.get("backend"),
        "data": meta.get("data"),
        "epochs": last["epoch"],
        "test_accuracy": last["test_acc"],
        "command": args.command,
        "date": args.date,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(manifest_path, lambda f: f.write(text.encode()))
    print(f"{file}: test accuracy {last['test_acc']:.4f} after {last['epoch']} epochs; manifest updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
