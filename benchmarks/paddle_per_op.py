"""Per-operation timings of a model's training step in PaddlePaddle and PyTorch: where Paddle's
time goes.

Each convolution (+ bias + ReLU) and each max pool of the model, at the model's shapes, is timed
alone, forward + backward (the gradients a training step needs: weights and bias, and the input
except for the first layer), in Paddle as ``frameworks/paddle`` runs it (``F.conv2d``, NCHW,
dynamic graph) and in PyTorch as ``frameworks/torch`` runs it (channels-last); then each
framework's whole ``Trainer.step``, so that "step − sum of the parts" shows what the per-op
view leaves out (the loss, the update, the framework's overheads).  Interleaved: each round
times every operation in both frameworks once; the table gives medians over rounds and each
convolution's GFLOP/s (forward + backward: 3 × 2 · MACs).  ``--onednn`` adds a Paddle column
with ``FLAGS_use_onednn`` on (off by default; on 2026-12-06 it changed no operation of the
dynamic graph beyond the rounds' noise: docs/benchmarks.md, "PaddlePaddle").

``--clock cpu`` times in CPU seconds of the process (all its threads) rather than wall
seconds: on a machine shared with other busy processes the wall time of an operation depends
on how much CPU the neighbours left, its CPU time much less.

    .venv-current/bin/python benchmarks/paddle_per_op.py [--model nin_d2l] [--batch-size 32] [--rounds 3] [--clock wall|cpu] [--onednn]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import nin
from nin.frameworks import get_backend
from nin.tables import markdown_table
from nin.train import Recipe, get_trainer

get_backend("paddle")  # the record's prepare hook imports Paddle (frameworks/paddle/__init__.py)
get_backend("torch")

import paddle  # noqa: E402
import paddle.nn.functional as PF  # noqa: E402
from per_op import _layers, _torch_layer  # noqa: E402  (benchmarks/per_op.py: the same layers, timed alike)

Call = Callable[[], object]
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _paddle_layer(layer, shape, batch: int, first: bool) -> Call:
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal((batch, *shape), dtype=np.float32), stop_gradient=first)
    if isinstance(layer, nin.MaxPool):
        x.stop_gradient = False
        return lambda: (
            PF.max_pool2d(x, layer.kernel, layer.stride, layer.padding, ceil_mode=layer.ceil_mode).sum().backward()
        )
    w = paddle.to_tensor(0.01 * rng.standard_normal((layer.out_channels, shape[0], *layer.kernel), dtype=np.float32))
    b = paddle.zeros([layer.out_channels])
    w.stop_gradient = b.stop_gradient = False
    return lambda: PF.relu(PF.conv2d(x, w, b, layer.stride, layer.padding)).sum().backward()


def _step(backend: str, spec: nin.NiNSpec, x: np.ndarray, y: np.ndarray) -> Call:
    trainer = get_trainer(backend, spec.name, Recipe(dropout=False))
    return lambda: trainer.step(x, y, 0.01)


def _onednn(on: bool) -> None:
    paddle.set_flags({"FLAGS_use_onednn": on, "FLAGS_use_mkldnn": on})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case per round (median)")
    parser.add_argument("--clock", choices=CLOCKS, default="wall")
    parser.add_argument("--onednn", action="store_true", help="also time Paddle with FLAGS_use_onednn on")
    args = parser.parse_args()
    spec, batch, clock = nin.get_spec(args.model), args.batch_size, CLOCKS[args.clock]
    rng = np.random.default_rng(0)
    x = rng.random((batch, spec.in_channels, *spec.input_size), dtype=np.float32)
    y = rng.integers(0, spec.num_classes, batch)
    layers = _layers(spec)
    columns = ["paddle", *(["paddle onednn"] if args.onednn else []), "torch"]
    cases: dict[str, dict[str, Call]] = {}
    for i, (name, layer, shape, _) in enumerate(layers):
        first = i == 0
        cases[name] = {
            "paddle": _paddle_layer(layer, shape, batch, first),
            "torch": _torch_layer(layer, shape, batch, first)[1],  # its forward + backward
        }
        if args.onednn:
            cases[name]["paddle onednn"] = cases[name]["paddle"]
    cases["whole Trainer.step"] = {"paddle": _step("paddle", spec, x, y), "torch": _step("torch", spec, x, y)}
    if args.onednn:
        cases["whole Trainer.step"]["paddle onednn"] = cases["whole Trainer.step"]["paddle"]
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, calls in cases.items():
            for column in columns:
                _onednn(column == "paddle onednn")
                calls[column]()  # warm-up: the kernels of this column's flags
                took = []
                for _ in range(args.repeats):
                    start = clock()
                    calls[column]()
                    took.append(clock() - start)
                times.setdefault((name, column), []).append(statistics.median(took))
    _onednn(False)
    macs = {name: m for name, _, _, m in layers}
    rows, sums = [], dict.fromkeys(columns, 0.0)
    for name in cases:
        cells = [name]
        for column in columns:
            ms = 1000 * statistics.median(times[name, column])
            if name in macs:
                sums[column] += ms
            gflops = 3 * 2 * macs.get(name, 0) * batch / (ms / 1000) / 1e9
            cells.append(f"{ms:.1f}" + (f" ({gflops:.0f})" if macs.get(name) else ""))
        rows.append(cells)
    rows.insert(-1, ["sum of the layers", *(f"{sums[c]:.1f}" for c in columns)])
    header = ["operation (fwd + bwd)", *(f"{c} ms (GFLOP/s)" for c in columns)]
    print(
        f"{args.model}, batch {batch}, {args.clock} clock, medians of {args.rounds} interleaved rounds of {args.repeats}"
    )
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
