"""Per-operation timings of ``nin_d2l``'s training step: where a backend loses time against
another.  Each convolution (+ ReLU) and each max pool of the model, at the model's shapes, is
timed alone, forward and forward + backward (the gradients a training step needs: weights and
bias, and the input except for the first layer), in JAX (NHWC, jitted, as
``frameworks/jax/model.py`` computes: ``Precision.HIGHEST``, the suite's ``max_pool`` with
its custom backward) and PyTorch (channels-last, as ``frameworks/torch`` runs), interleaved:
each round times every operation in both frameworks once; the table gives medians over
rounds, and each operation's GFLOP/s (a convolution's forward is 2·MACs, its forward +
backward 3× that; a pool's FLOPs are not counted).

    .venv/bin/python benchmarks/per_op.py [--model nin_d2l] [--batch-size 32] [--rounds 3] [--out runs/per_op]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import nin
from nin.frameworks import thread_env

# XLA sizes its CPU pool at its first computation: the same threads as torch's
os.environ.update(thread_env("jax", os.cpu_count() or 1))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from jax import lax  # noqa: E402

from nin.frameworks.jax.model import max_pool  # noqa: E402
from nin.tables import markdown_table  # noqa: E402


def _ops(spec: nin.NiNSpec) -> list[tuple[str, object, tuple[int, ...], int]]:
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


def _jax_calls(layer, shape, batch: int, first: bool):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, *shape[1:], shape[0]), dtype=np.float32))
    if isinstance(layer, nin.MaxPool):
        fwd = jax.jit(lambda x: max_pool(x, layer))
        grad = jax.jit(jax.grad(lambda x: max_pool(x, layer).sum()))
        return (lambda: fwd(x).block_until_ready()), (lambda: grad(x).block_until_ready())
    w = jnp.asarray(rng.standard_normal((*layer.kernel, shape[0], layer.out_channels), dtype=np.float32) * 0.01)
    b = jnp.zeros(layer.out_channels, jnp.float32)

    def conv(x, w, b):
        y = lax.conv_general_dilated(
            x, w, layer.stride, [(p, p) for p in layer.padding], dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=lax.Precision.HIGHEST,
        )  # fmt: skip
        return jax.nn.relu(y + b)

    fwd = jax.jit(conv)
    grad = jax.jit(jax.grad(lambda w, b, x: conv(x, w, b).sum(), argnums=(0, 1) if first else (0, 1, 2)))
    return (lambda: fwd(x, w, b).block_until_ready()), (lambda: jax.block_until_ready(grad(w, b, x)))


def _torch_calls(layer, shape, batch: int, first: bool):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=gen).contiguous(memory_format=torch.channels_last)
    if isinstance(layer, nin.MaxPool):
        xg = x.clone().requires_grad_()

        def step():
            F.max_pool2d(xg, layer.kernel, layer.stride, layer.padding).sum().backward()

        def forward():
            with torch.no_grad():
                F.max_pool2d(x, layer.kernel, layer.stride, layer.padding)

        return forward, step
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


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nin_d2l")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="runs/per_op")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    spec = nin.get_spec(args.model)
    ops = _ops(spec)
    calls = {}
    for i, (name, layer, shape, _) in enumerate(ops):
        first = i == 0
        calls[name] = {
            "jax": _jax_calls(layer, shape, args.batch_size, first),
            "torch": _torch_calls(layer, shape, args.batch_size, first),
        }
        for fwd, step in calls[name].values():
            fwd(), step()
    times: dict[tuple[str, str, str], list[float]] = {}
    for r in range(args.rounds):
        for name in calls:
            for fw, (fwd, step) in calls[name].items():
                times.setdefault((name, fw, "forward"), []).append(_timed(fwd))
                times.setdefault((name, fw, "step"), []).append(_timed(step))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    med = {key: statistics.median(v) for key, v in times.items()}
    header = ("op", "MACs/ex (M)", "torch fwd ms", "jax fwd ms", "torch fwd+bwd ms", "jax fwd+bwd ms",
              "torch fwd+bwd GFLOP/s", "jax fwd+bwd GFLOP/s", "jax / torch fwd+bwd")  # fmt: skip
    rows = []
    for name, _, _, macs in ops:
        flops = 3 * 2 * macs * args.batch_size
        t_step, j_step = med[name, "torch", "step"], med[name, "jax", "step"]
        rows.append((
            name, f"{macs / 1e6:.0f}",
            f"{1e3 * med[name, 'torch', 'forward']:.1f}", f"{1e3 * med[name, 'jax', 'forward']:.1f}",
            f"{1e3 * t_step:.1f}", f"{1e3 * j_step:.1f}",
            f"{flops / t_step / 1e9:.0f}" if macs else "-", f"{flops / j_step / 1e9:.0f}" if macs else "-",
            f"{j_step / t_step:.2f}",
        ))  # fmt: skip
    total = [sum(med[name, fw, "step"] for name, *_ in ops) for fw in ("torch", "jax")]
    rows.append(
        ("sum", "", "", "", f"{1e3 * total[0]:.0f}", f"{1e3 * total[1]:.0f}", "", "", f"{total[1] / total[0]:.2f}")
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "per_op.json").write_text(json.dumps({" | ".join(k): v for k, v in times.items()}, indent=1))
    table = markdown_table(header, rows, right=tuple(range(1, len(header))))
    (out / "per_op.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
