"""Per-operation timings of a model's training step in JAX and PyTorch: where the time goes.

Each convolution (+ bias + ReLU) and each max pool of the model, at the model's shapes, is timed
alone, forward and forward + backward (the gradients a training step needs: weights and bias,
and the input except for the first layer), in JAX as ``frameworks/jax/model.py`` computes it
(its own ``ConvReLU`` module and ``max_pool``, NHWC, jitted) and in PyTorch (channels-last, as
``frameworks/torch`` runs); then the parts of the step that are not layers — the input's layout
change, the loss and its gradient, the SGD update of every parameter — and the whole
``Trainer.step`` of both backends, so that "step − sum of the parts" shows what the per-op view
leaves out (XLA's fusions across layers, the framework's overheads).  Interleaved: each round
times every operation in both frameworks once; the table gives medians over rounds and each
operation's GFLOP/s (a convolution's forward is 2·MACs, its forward + backward 3× that; a
pool's FLOPs are not counted).

``--clock cpu`` times in CPU seconds of the process (all its threads) rather than wall
seconds: on a machine shared with other busy processes the wall time of an operation depends
on how much CPU the neighbours left, its CPU time much less (it still counts the cache and
memory bandwidth they take).

    .venv/bin/python benchmarks/per_op.py [--model nin_d2l] [--batch-size 32] [--rounds 3] [--clock wall|cpu] [--out runs/per_op]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import nin
from nin.frameworks import get_backend, thread_env

# XLA sizes its CPU pool at its first computation: the same threads as torch's
os.environ.update(thread_env("jax", os.cpu_count() or 1))
get_backend("jax")  # the record's host settings (XLA flags) before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nin.conformance import sample_batch  # noqa: E402
from nin.frameworks.jax.adapter import apply_logits  # noqa: E402
from nin.frameworks.jax.model import ConvReLU, max_pool  # noqa: E402
from nin.frameworks.jax.train import coupled_sgd  # noqa: E402
from nin.tables import markdown_table  # noqa: E402
from nin.train import Recipe, get_trainer  # noqa: E402

Call = Callable[[], object]
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _layers(spec: nin.NiNSpec) -> list[tuple[str, object, tuple[int, ...], int]]:
    """(name, layer spec, input shape (C, H, W), MACs per example) for every conv and max pool."""
    rows = {row.name: row for row in nin.layer_table(spec)}
    shape, out = (spec.in_channels, *spec.input_size), []
    for name, layer in spec.named_layers():
        if isinstance(layer, nin.NiNBlock):
            for c, conv in enumerate(layer.convs):
                row = rows[f"{name}.conv{c}"]
                out.append((row.name, conv, shape, row.macs))
                shape = row.output_shape
        elif isinstance(layer, nin.MaxPool):
            out.append((name, layer, shape, 0))
            shape = rows[name].output_shape
    return out


def _jax_layer(layer, shape, batch: int, first: bool) -> tuple[Call, Call]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, *shape[1:], shape[0]), dtype=np.float32))
    if isinstance(layer, nin.MaxPool):
        fwd = jax.jit(lambda x: max_pool(x, layer))
        grad = jax.jit(jax.grad(lambda x: max_pool(x, layer).sum()))
        return (lambda: fwd(x).block_until_ready()), (lambda: grad(x).block_until_ready())
    module = ConvReLU(layer)
    params = module.init(jax.random.key(0), x)
    fwd = jax.jit(module.apply)
    grad = jax.jit(jax.grad(lambda p, x: module.apply(p, x).sum(), argnums=0 if first else (0, 1)))
    return (lambda: fwd(params, x).block_until_ready()), (lambda: jax.block_until_ready(grad(params, x)))


def _torch_layer(layer, shape, batch: int, first: bool) -> tuple[Call, Call]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=gen).contiguous(memory_format=torch.channels_last)
    if isinstance(layer, nin.MaxPool):
        xg = x.clone().requires_grad_()

        def pool_step():
            F.max_pool2d(xg, layer.kernel, layer.stride, layer.padding, ceil_mode=layer.ceil_mode).sum().backward()

        def pool_forward():
            with torch.no_grad():
                F.max_pool2d(x, layer.kernel, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)

        return pool_forward, pool_step
    w = (0.01 * torch.randn(layer.out_channels, shape[0], *layer.kernel, generator=gen)).contiguous(
        memory_format=torch.channels_last
    )
    w.requires_grad_()
    b = torch.zeros(layer.out_channels, requires_grad=True)
    xg = x.clone().requires_grad_(not first)

    def forward():
        with torch.no_grad():
            F.relu(F.conv2d(x, w, b, layer.stride, layer.padding))

    def step():
        F.relu(F.conv2d(xg, w, b, layer.stride, layer.padding)).sum().backward()

    return forward, step


def _jax_rest(spec: nin.NiNSpec, batch: int, x: np.ndarray, y: np.ndarray) -> dict[str, Call]:
    """The layout change of the input, the loss with its gradient, the update, the whole step."""
    trainer = get_trainer("jax", spec.name, Recipe())
    model, recipe = trainer.model, trainer.recipe
    xj = jax.device_put(x)
    logits = apply_logits(model.module, model.params, xj, None, False)
    labels = jnp.asarray(y, jnp.int32)
    layout = jax.jit(lambda x: jnp.moveaxis(x, 1, -1))
    loss = jax.jit(jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()))
    sgd = coupled_sgd(0.01, recipe.momentum, recipe.weight_decay)
    params = jax.tree.map(jnp.copy, model.params)
    state = {"params": params, "opt": sgd.init(params)}

    @jax.jit
    def update(params, opt, grads):
        updates, opt = sgd.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    grads = jax.tree.map(jnp.ones_like, params)

    def run_update():
        state["params"], state["opt"] = update(state["params"], state["opt"], grads)
        jax.block_until_ready(state["params"])

    return {
        "layout": lambda: layout(xj).block_until_ready(),
        "loss": lambda: loss(logits).block_until_ready(),
        "update": run_update,
        "step": lambda: trainer.step(x, y, 0.01),
    }


def _torch_rest(spec: nin.NiNSpec, batch: int, x: np.ndarray, y: np.ndarray) -> dict[str, Call]:
    trainer = get_trainer("torch", spec.name, Recipe())
    xt = torch.from_numpy(x)
    logits = torch.randn(batch, spec.num_classes, requires_grad=True)
    labels = torch.from_numpy(y)
    params = [p.detach().clone().requires_grad_() for p in trainer.model.parameters()]
    for p in params:
        p.grad = torch.ones_like(p)
    recipe = trainer.recipe
    sgd = torch.optim.SGD(params, lr=0.01, momentum=recipe.momentum, weight_decay=recipe.weight_decay)

    def loss():
        F.cross_entropy(logits, labels).backward()

    return {
        "layout": lambda: xt.contiguous(memory_format=torch.channels_last),
        "loss": loss,
        "update": sgd.step,
        "step": lambda: trainer.step(x, y, 0.01),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    parser.add_argument("--out", default="runs/per_op")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    torch.set_num_threads(os.cpu_count() or 1)
    spec = nin.get_spec(args.model)
    layers = _layers(spec)
    calls: dict[str, dict[str, dict[str, Call]]] = {}
    for i, (name, layer, shape, _) in enumerate(layers):
        first = i == 0
        jf, js = _jax_layer(layer, shape, args.batch_size, first)
        tf, ts = _torch_layer(layer, shape, args.batch_size, first)
        calls[name] = {"jax": {"forward": jf, "step": js}, "torch": {"forward": tf, "step": ts}}
    x = sample_batch(spec, args.batch_size)
    y = (np.arange(args.batch_size) % spec.num_classes).astype(np.int64)
    rest = {"jax": _jax_rest(spec, args.batch_size, x, y), "torch": _torch_rest(spec, args.batch_size, x, y)}
    for part in rest["jax"]:
        calls[part] = {fw: {"step": rest[fw][part]} for fw in rest}
    for per_fw in calls.values():
        for fns in per_fw.values():
            for fn in fns.values():
                fn()
    times: dict[tuple[str, str, str], list[float]] = {}
    for r in range(args.rounds):
        for name, per_fw in calls.items():
            for fw, fns in per_fw.items():
                for kind, fn in fns.items():
                    start = clock()
                    fn()
                    times.setdefault((name, fw, kind), []).append(clock() - start)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    med = {key: statistics.median(v) for key, v in times.items()}
    unit = "ms" if args.clock == "wall" else "CPU ms"
    header = ("op", "MACs/ex (M)", f"torch fwd {unit}", f"jax fwd {unit}", f"torch fwd+bwd {unit}",
              f"jax fwd+bwd {unit}", "torch fwd+bwd GFLOP/s", "jax fwd+bwd GFLOP/s", "jax / torch fwd+bwd")  # fmt: skip
    if args.clock == "cpu":
        header = (*header[:6], "torch GFLOP/CPU s", "jax GFLOP/CPU s", header[8])
    rows = []
    for name, _, _, macs in layers:
        flops = 3 * 2 * macs * args.batch_size
        t_step, j_step = med[name, "torch", "step"], med[name, "jax", "step"]
        rows.append((
            name, f"{macs / 1e6:.0f}",
            f"{1e3 * med[name, 'torch', 'forward']:.1f}", f"{1e3 * med[name, 'jax', 'forward']:.1f}",
            f"{1e3 * t_step:.1f}", f"{1e3 * j_step:.1f}",
            f"{flops / t_step / 1e9:.0f}" if macs else "-", f"{flops / j_step / 1e9:.0f}" if macs else "-",
            f"{j_step / t_step:.2f}",
        ))  # fmt: skip
    parts = [name for name, *_ in layers] + ["layout", "loss", "update"]
    total = {fw: sum(med[name, fw, "step"] for name in parts) for fw in ("torch", "jax")}
    rows.append(("sum of the above", "", "", "", *(f"{1e3 * total[fw]:.0f}" for fw in ("torch", "jax")), "", "",
                 f"{total['jax'] / total['torch']:.2f}"))  # fmt: skip
    for part in ("layout", "loss", "update"):
        rows.insert(-1, (part, "", "", "", *(f"{1e3 * med[part, fw, 'step']:.1f}" for fw in ("torch", "jax")), "", "",
                         f"{med[part, 'jax', 'step'] / med[part, 'torch', 'step']:.2f}"))  # fmt: skip
    step = {fw: med["step", fw, "step"] for fw in ("torch", "jax")}
    flops = 3 * 2 * nin.shapes.mac_count(spec) * args.batch_size
    rows.append(("Trainer.step", f"{nin.shapes.mac_count(spec) / 1e6:.0f}", "", "",
                 *(f"{1e3 * step[fw]:.0f}" for fw in ("torch", "jax")),
                 *(f"{flops / step[fw] / 1e9:.0f}" for fw in ("torch", "jax")), f"{step['jax'] / step['torch']:.2f}"))  # fmt: skip
    rows.append(("step − sum", "", "", "", *(f"{1e3 * (step[fw] - total[fw]):.0f}" for fw in ("torch", "jax")), "", "", ""))  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "clock": args.clock,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    record["times"] = {" | ".join(k): v for k, v in times.items()}
    (out / "per_op.json").write_text(json.dumps(record, indent=1))
    table = markdown_table(header, rows, right=tuple(range(1, len(header))))
    (out / "per_op.md").write_text(table + "\n")
    print(f"jax {jax.__version__}, torch {torch.__version__}, XLA_FLAGS={record['xla_flags']!r}, clock {args.clock}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
