"""The JAX backend's training step and forward against those of its model at other git
revisions, in one process, in interleaved rounds, as shares of each round's GEMM peak.

Every case is the JAX backend's own compiled ``Trainer`` step (``train._train_step``: forward,
loss, backward, the SGD update) and its evaluation forward (``adapter.apply_logits``) on a
model module: the worktree's ``frameworks/jax/model.py`` and, for each ``--against REV``, that
file as it was at git revision ``REV`` (loaded from ``git show``, so only the model differs;
the adapter and the step are the worktree's).  ``--torch`` adds the PyTorch backend's
``Trainer.step`` and forward as the yardstick.  A round measures the peak first — the best
of three 2048² float32 GEMMs of NumPy and of a jitted ``jnp.dot`` — then each case once (the
order rotating by one case per round), and per case: the time, the achieved GFLOP/s over that
round's peak (a forward is 2·MACs FLOPs per example, a step 3× that, as ``nin bench`` counts)
and the time over the first case's of the same round.  The table gives medians and ranges over
rounds.

``--clock cpu`` times in CPU seconds of the process (all its threads): on a machine shared
with busy neighbours this depends much less on how much CPU they leave, and the peak is
measured on the same clock.  It is a proxy only: an operation that leaves a thread idle costs
wall time it does not show.

    .venv/bin/python benchmarks/jax_step.py --against 6ec651e [--torch] [--rounds 5] [--clock wall|cpu] [--json F]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import nin
from nin.frameworks import get_backend, thread_env

os.environ.update(thread_env("jax", os.cpu_count() or 1))
get_backend("jax")  # the record's host settings (XLA flags) before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from nin.conformance import sample_batch  # noqa: E402
from nin.frameworks.jax import adapter, train  # noqa: E402
from nin.frameworks.jax import model as worktree_model  # noqa: E402
from nin.train import Recipe  # noqa: E402

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
PEAK_SIZE = 2048
REPO = Path(__file__).resolve().parent.parent


def model_at(revision: str):
    """``frameworks/jax/model.py`` as it was at git ``revision``, imported as a module."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:frameworks/jax/model.py"], capture_output=True, text=True
    )
    if source.returncode != 0:
        raise SystemExit(
            f"--against {revision}: git cannot show frameworks/jax/model.py there ({source.stderr.strip()})"
        )
    path = Path(tempfile.mkdtemp()) / f"model_{revision}.py"
    path.write_text(source.stdout)
    name = f"_jax_model_{revision}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Flax's dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class JaxCase:
    """One model module's compiled training step and evaluation forward on a fixed batch."""

    def __init__(self, model_module, spec: nin.NiNSpec, x: np.ndarray, y: np.ndarray):
        recipe = Recipe()
        self.module = model_module.NiN(spec)
        shape = (1, *spec.input_size, spec.in_channels)
        self.params = self.module.init(jax.random.key(0), jnp.zeros(shape), train=False)["params"]
        self.opt_state = train.coupled_sgd(0.01, recipe.momentum, recipe.weight_decay).init(self.params)
        self.momentum, self.weight_decay = recipe.momentum, recipe.weight_decay
        self.x, self.y = jax.device_put(x), jax.device_put(y.astype(np.int32))
        self.key = jax.random.key(1)
        self.step(), self.forward()

    def step(self) -> None:
        self.params, self.opt_state, loss, _ = train._train_step(
            self.module, self.momentum, self.weight_decay, self.params, self.opt_state,
            self.x, self.y, np.float32(0.01), self.key,
        )  # fmt: skip
        loss.block_until_ready()

    def forward(self) -> None:
        adapter.apply_logits(self.module, self.params, self.x, None, False).block_until_ready()


class TorchCase:
    """The PyTorch backend's ``Trainer.step`` and forward on the same batch."""

    def __init__(self, spec: nin.NiNSpec, x: np.ndarray, y: np.ndarray):
        from nin.train import get_trainer

        self.backend = get_backend("torch")
        self.backend.set_threads(os.cpu_count() or 1)
        self.trainer = get_trainer("torch", spec, Recipe())
        self.x, self.y = x, y
        self.step(), self.forward()

    def step(self) -> None:
        self.trainer.step(self.x, self.y, 0.01)

    def forward(self) -> None:
        self.backend.forward(self.trainer.model, self.x)


def _peak(clock: Callable[[], float]) -> float:
    """The best GFLOP/s of three 2048² GEMMs each of NumPy and of a jitted ``jnp.dot``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32) for _ in range(2))
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    product = jax.jit(lambda a, b: jnp.dot(a, b, precision=lax.Precision.HIGHEST))
    calls = [lambda: a @ b, lambda: product(ja, jb).block_until_ready()]
    for call in calls:
        call()
    best = float("inf")
    for call in calls:
        for _ in range(3):
            start = clock()
            call()
            best = min(best, clock() - start)
    return 2 * PEAK_SIZE**3 / best / 1e9


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", action="append", default=[], metavar="REV", help="a git revision; repeatable")
    parser.add_argument("--torch", action="store_true", help="add the PyTorch backend's step and forward")
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    spec = nin.get_spec(args.model)
    x = sample_batch(spec, args.batch_size)
    y = (np.arange(args.batch_size) % spec.num_classes).astype(np.int64)
    models = {"jax (worktree)": worktree_model} | {f"jax ({rev})": model_at(rev) for rev in args.against}
    cases: dict[str, JaxCase | TorchCase] = {name: JaxCase(module, spec, x, y) for name, module in models.items()}
    if args.torch:
        cases["torch"] = TorchCase(spec, x, y)
    flops = 2 * nin.shapes.mac_count(spec) * args.batch_size
    names = list(cases)
    rounds = []
    for r in range(args.rounds):
        peak = _peak(clock)
        row: dict = {"peak_gflops": peak}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for kind, call, work in (("step", cases[name].step, 3 * flops), ("forward", cases[name].forward, flops)):
                start = clock()
                call()
                elapsed = clock() - start
                row[f"{name} {kind}"] = {"s": elapsed, "share": work / elapsed / 1e9 / peak}
        rounds.append(row)
        print(f"round {r + 1}/{args.rounds}: peak {peak:.0f} GFLOP/s", file=sys.stderr, flush=True)
    print(
        f"{args.model} batch {args.batch_size}, {args.rounds} interleaved rounds, clock {args.clock}; "
        f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
        f"peak {_spread([r['peak_gflops'] for r in rounds])['median']:.0f} GFLOP/s (median of rounds)"
    )
    summary = {}
    for kind in ("step", "forward"):
        for name in names:
            key, first = f"{name} {kind}", f"{names[0]} {kind}"
            times = _spread([r[key]["s"] for r in rounds])
            shares = _spread([r[key]["share"] for r in rounds])
            ratios = _spread([r[key]["s"] / r[first]["s"] for r in rounds])
            summary[key] = {"s": times, "share": shares, "vs_first": ratios}
            print(
                f"  {key:<28} {times['median']:.3f} s ({times['min']:.3f}–{times['max']:.3f})  "
                f"{100 * shares['median']:.0f}% of round peak ({100 * shares['min']:.0f}–{100 * shares['max']:.0f}%)  "
                f"×{ratios['median']:.3f} ({ratios['min']:.3f}–{ratios['max']:.3f}) of {names[0]}'s time"
            )
    if args.json:
        record = {"model": args.model, "batch_size": args.batch_size, "clock": args.clock, "jax": jax.__version__}
        record |= {"xla_flags": os.environ.get("XLA_FLAGS", ""), "rounds": rounds, "summary": summary}
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
