"""Per-operation timings of a model's training step in MLX beside PyTorch: where MLX's time goes.

Each convolution (+ bias + ReLU) and each max pool of the model, at the model's shapes, is timed
alone, forward and forward + backward (weights and bias, and the input except for the first
layer), in MLX as ``frameworks/mlx/model.py`` computes it (its ``convolve`` + ReLU, its ``MaxPool``;
NHWC, the batch split over the adapter's streams, ``mx.compile``-d, evaluated) and in PyTorch as ``benchmarks/per_op.py`` times
it (channels-last); then each framework's 2048² float32 GEMM (the backends' ``gemm_probe``) and
the whole ``Trainer.step`` of both.  Interleaved: each round times every operation in both
frameworks once; the table gives medians over rounds and each operation's GFLOP/s (a
convolution's forward is 2·MACs, its forward + backward 3× that).  Then what is not one layer:
the loss with its gradient, the SGD update of every parameter (both frameworks), and MLX's
whole-model forward + backward without the update (the step's ``value_and_grads``), so that
the step splits into the layers, what joins them, and the update.

    .venv-current/bin/python benchmarks/mlx_per_op.py [--model nin_d2l] [--batch-size 32] [--rounds 3]

MLX multiplies with the BLAS its backend chooses (``NIN_MLX_BLAS``, ``nin.blas``); the
first line printed names it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from per_op import _layers, _torch_layer, _torch_rest

import nin
from nin.conformance import sample_batch
from nin.frameworks import get_backend
from nin.tables import markdown_table
from nin.train import Recipe, get_trainer

Call = Callable[[], object]


def _mlx_layer(layer, shape, batch: int, first: bool) -> tuple[Call, Call]:
    import mlx.core as mx
    import mlx.nn as nn

    from nin.frameworks.mlx.adapter import on_streams
    from nin.frameworks.mlx.model import MaxPool, convolve

    def over_streams(f: Callable) -> Callable:  # as the model runs: each piece of the batch on its stream
        return lambda *args: on_streams(lambda x: f(*args[:-1], x), args[-1])

    x = mx.array(np.random.default_rng(0).standard_normal((batch, *shape[1:], shape[0]), dtype=np.float32))
    if isinstance(layer, nin.MaxPool):
        pool = over_streams(MaxPool(layer))
        fwd = mx.compile(pool)
        grad = mx.compile(mx.grad(lambda x: pool(x).sum()))
        return (lambda: mx.eval(fwd(x))), (lambda: mx.eval(grad(x)))
    rng = np.random.default_rng(1)
    w = mx.array(0.01 * rng.standard_normal((layer.out_channels, *layer.kernel, shape[0]), dtype=np.float32))
    b = mx.zeros(layer.out_channels)

    @over_streams
    def conv_relu(w: mx.array, b: mx.array, x: mx.array) -> mx.array:  # the model's convolution, then ReLU
        return nn.relu(convolve(x, w, b, layer.stride, layer.padding))

    fwd = mx.compile(conv_relu)
    grad = mx.compile(mx.grad(lambda w, b, x: conv_relu(w, b, x).sum(), argnums=(0, 1) if first else (0, 1, 2)))
    return (lambda: mx.eval(fwd(w, b, x))), (lambda: mx.eval(grad(w, b, x)))


def _mlx_rest(spec: nin.NiNSpec, batch: int, x: np.ndarray, y: np.ndarray) -> dict[str, Call]:
    """The parts of MLX's step that are not one layer: the loss with its gradient, the whole
    model's forward + backward over the streams (the adapter's ``value_and_grads``, compiled as
    the step compiles it) without the update, and the SGD update of every parameter."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_map

    from nin.frameworks.mlx.adapter import native_input, native_labels, value_and_grads

    backend = get_backend("mlx")
    model = backend.build(spec)
    xm, labels = native_input(model, x), native_labels(model, y, batch)
    weight, scale = mx.ones(batch), mx.array(1 / batch)
    logits = mx.random.normal((batch, spec.num_classes))
    loss = mx.compile(mx.grad(lambda z: nn.losses.cross_entropy(z, labels, reduction="mean")))
    state = [model.state, mx.random.state]

    def forward_backward(x: mx.array):  # in evaluation mode: no dropout, as the timed steps (Recipe(dropout=False))
        loss, _, grads = value_and_grads(model, x, labels, weight, scale)
        return loss, grads

    forward_backward = mx.compile(forward_backward, inputs=state, outputs=state)
    other = backend.build(spec)  # the update changes its weights, not the model above
    recipe = Recipe()
    sgd = optim.SGD(learning_rate=0.01, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    sgd.init(other.trainable_parameters())
    grads = tree_map(mx.ones_like, other.trainable_parameters())
    mx.eval(grads)
    update = mx.compile(
        lambda: sgd.update(other, grads), inputs=[other.state, sgd.state], outputs=[other.state, sgd.state]
    )

    def run_update():
        update()
        mx.eval(other.state, sgd.state)

    return {
        "loss and its gradient": lambda: mx.eval(loss(logits)),
        "model forward+backward, no update": lambda: mx.eval(forward_backward(xm)),
        "update (SGD, every parameter)": run_update,
    }


def _time(call: Call, repeats: int) -> float:
    call()  # warm-up: compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # the backend first: its record's prepare chooses MLX's BLAS (nin.blas) before MLX loads
    print(get_backend("mlx").framework_version(), "|", get_backend("torch").framework_version(), flush=True)
    spec, batch = nin.get_spec(args.model), args.batch_size
    ops: dict[str, dict[str, Call]] = {}
    flops: dict[str, float] = {}
    for name, layer, shape, macs in _layers(spec):
        first = not ops
        for fw, make in (("mlx", _mlx_layer), ("torch", _torch_layer)):
            forward, step = make(layer, shape, batch, first)
            ops.setdefault(f"{name} forward", {})[fw] = forward
            ops.setdefault(f"{name} forward+backward", {})[fw] = step
        flops[f"{name} forward"], flops[f"{name} forward+backward"] = 2 * macs * batch, 6 * macs * batch
    a, b = (np.random.default_rng(1).standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    ops["GEMM 2048²"] = {fw: get_backend(fw).gemm_probe(a, b) for fw in ("mlx", "torch")}
    flops["GEMM 2048²"] = 2 * 2048**3
    x, y = sample_batch(spec, batch), np.arange(batch) % spec.num_classes
    rest, torch_rest = _mlx_rest(spec, batch, x, y), _torch_rest(spec, batch, x, y)
    for part, call in rest.items():
        ops[part] = {"mlx": call}
        flops[part] = 6 * nin.mac_count(spec) * batch if part.startswith("model") else 0
    ops["loss and its gradient"]["torch"] = torch_rest["loss"]
    ops["update (SGD, every parameter)"]["torch"] = torch_rest["update"]
    trainers = {fw: get_trainer(fw, spec, Recipe(dropout=False)) for fw in ("mlx", "torch")}
    ops["Trainer.step"] = {fw: (lambda t=t: t.step(x, y, 0.01)) for fw, t in trainers.items()}
    flops["Trainer.step"] = 6 * nin.mac_count(spec) * batch
    seconds: dict[str, dict[str, list[float]]] = {op: {fw: [] for fw in calls} for op, calls in ops.items()}
    for r in range(args.rounds):
        for op, calls in ops.items():
            for fw, call in calls.items():
                seconds[op][fw].append(_time(call, 1 if op == "Trainer.step" else 3))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    rows = []
    for op, by_fw in seconds.items():
        med = {fw: statistics.median(ts) for fw, ts in by_fw.items()}
        rows.append(
            [op]
            + [
                "-"
                if fw not in med
                else f"{1e3 * med[fw]:.1f} ({flops[op] / med[fw] / 1e9:.1f})"
                if flops[op]
                else f"{1e3 * med[fw]:.1f}"
                for fw in ("mlx", "torch")
            ]
            + [f"{med['mlx'] / med['torch']:.1f}×" if "torch" in med else "-"]
        )
    print(markdown_table(["operation", "mlx ms (GFLOP/s)", "torch ms (GFLOP/s)", "mlx / torch"], rows))


if __name__ == "__main__":
    main()
