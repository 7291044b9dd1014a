"""The JAX backend's training step under two environments, timed in interleaved rounds.

Each round runs one fresh process per Python interpreter (e.g. the legacy ``.venv`` with JAX
0.7.1 and ``.venv-current`` with today's JAX), one after the other, so both see the same
neighbours on a shared machine; each process builds the model, compiles the step, then times
``--repeats`` steps and reports their median.  Per round the ratio current/legacy is taken, and
the median and range of those ratios is what to read.

    .venv/bin/python benchmarks/jax_versions.py --pythons .venv/bin/python .venv-current/bin/python

``--xla-flags=FLAGS`` (repeatable) adds a run of every interpreter with ``XLA_FLAGS=FLAGS`` beside
the one without, to find a flag that closes a gap; ``--env NAME=VALUE`` (repeatable) adds one
with that environment variable, e.g. ``--env NIN_XLA_DEFAULTS=1`` (the JAX backend's XLA
flags off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# what one timing process runs: a JAX Trainer.step on nin_d2l, median of `repeats` steps
_CHILD = r"""
import json, statistics, sys, time
import numpy as np
import jax, flax, nin
from nin.train import Recipe, get_trainer

model, batch, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spec = nin.get_spec(model)
trainer = get_trainer("jax", model, Recipe(batch_size=batch, dropout=False))
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, spec.in_channels, *spec.input_size), dtype=np.float32)
y = rng.integers(0, spec.num_classes, batch)
t0 = time.perf_counter(); trainer.step(x, y, 0.01); first = time.perf_counter() - t0
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); trainer.step(x, y, 0.01); times.append(time.perf_counter() - t0)
print(json.dumps({"jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__,
                  "first_s": first, "step_s": statistics.median(times)}))
"""


def time_step(python: str, model: str, batch: int, repeats: int, setting: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(setting)
    out = subprocess.run(
        [python, "-c", _CHILD, model, str(batch), str(repeats)], capture_output=True, text=True, env=env, timeout=900
    )
    if out.returncode != 0:  # e.g. a flag this jaxlib does not know: XLA aborts at start-up
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit status {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", nargs="+", required=True, help="interpreters to compare; the first is the base")
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--xla-flags", action="append", metavar="FLAGS", help="an XLA_FLAGS set to try, as --xla-flags=...; repeatable"
    )
    parser.add_argument(
        "--env", action="append", metavar="NAME=VALUE", help="an environment variable to try; repeatable"
    )
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    for text in args.env or []:
        if "=" not in text:
            parser.error(f"--env takes NAME=VALUE; got {text!r}")

    settings = {"": {}} | {f: {"XLA_FLAGS": f} for f in args.xla_flags or []}
    settings |= {text: dict([text.split("=", 1)]) for text in args.env or []}
    cases = [(py, flags) for flags in settings for py in args.pythons]
    rounds: list[list[dict]] = []
    failed: dict[int, str] = {}  # case index -> why it cannot run (tried once, in the first round)
    for r in range(args.rounds):
        row = []
        for i, (python, flags) in enumerate(cases):
            if i in failed:
                row.append({"python": python, "xla_flags": flags, "error": failed[i]})
                continue
            record = {
                "python": python,
                "xla_flags": flags,
                **time_step(python, args.model, args.batch_size, args.repeats, settings[flags]),
            }
            row.append(record)
            if "error" in record:
                if i == 0:
                    raise SystemExit(f"{python} without XLA_FLAGS failed: {record['error']}")
                failed[i] = record["error"]
                print(f"round {r + 1}: {python} {flags}: failed ({record['error']}); dropped", file=sys.stderr)
                continue
            print(
                f"round {r + 1}: jax {record['jax']:<7} {flags or '(no XLA_FLAGS given)':<40} "
                f"step {record['step_s']:.3f} s  (first {record['first_s']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        rounds.append(row)

    print(
        f"{args.model} b{args.batch_size}: JAX training step, median over {args.rounds} interleaved rounds "
        f"(each the median of {args.repeats} steps); ratio = case / first case of the same round"
    )
    for i, (python, flags) in enumerate(cases):
        if i in failed:
            print(f"  {python} {flags}: cannot run ({failed[i]})")
            continue
        steps = [row[i]["step_s"] for row in rounds]
        ratios = [row[i]["step_s"] / row[0]["step_s"] for row in rounds]
        print(
            f"  jax {rounds[0][i]['jax']:<7} {flags or '(no XLA_FLAGS given)':<40} step {statistics.median(steps):.3f} s "
            f"[{min(steps):.3f}–{max(steps):.3f}]  ratio {statistics.median(ratios):.2f} "
            f"[{min(ratios):.2f}–{max(ratios):.2f}]"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "batch_size": args.batch_size, "rounds": rounds}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
