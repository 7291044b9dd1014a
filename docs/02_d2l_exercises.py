# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The d2l NiN exercises, answered with numbers
#
# The NiN section of *Dive into Deep Learning* (Zhang et al., §8.3) ends with exercises. The
# suite's zoo contains the variants they ask about, and `nin.layer_table` counts the parameters,
# multiply-accumulates (MACs) and activations of any spec without a framework. This tutorial
# answers the exercises:
#
# * (a) one, two or three 1×1 convolutions per block;
# * (b) 3×3 convolutions in place of the 1×1 ones;
# * (c) global average pooling vs a fully connected head;
# * (d) a family of NiN-like networks designed the way VGG-11/16/19 were;
# * (e) resource use: parameters, computation, memory for training and for inference;
# * (f) the problem with reducing the 384×5×5 representation to 10×5×5 in one step.
#
# Most answers are analytic, so they are exact and cost no time. Two things are measured:
# a short training comparison for (a), and the peak memory of one PyTorch training step
# for (e). Both are kept small so that the whole script runs in about a minute on two CPU
# cores. The printed numbers come from the code; anything stated in the text is checked with
# an `assert`.

# %%
import math
import os
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np

import nin
from nin.tables import text_table
from nin.visualize import class_map_problem

available = nin.available_backends()
print("backends installed:", ", ".join(available) or "none")


def totals(spec: nin.NiNSpec, input_size: tuple[int, ...] | None = None) -> dict[str, int]:
    """Parameters, MACs, activations per example and convolution count of a spec."""
    rows = nin.layer_table(spec, input_size)
    return {
        "params": sum(r.params for r in rows),
        "macs": sum(r.macs for r in rows),
        "activations": sum(r.activations for r in rows),
        "convs": sum(len(block.convs) for block in spec.blocks()),
    }


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


# %% [markdown]
# ## (a) Why two 1×1 convolutions per block? Try one and three
#
# `nin_d2l_1x1` and `nin_d2l_3x1x1` are the d2l NiN with one and three 1×1 convolutions after
# each block's spatial convolution. A 1×1 layer costs `C·C + C` parameters in a block of width
# `C`, and its MACs are those parameters (without the bias) times the block's number of pixels.
# Most of the d2l NiN's computation is in the four spatial convolutions (the line under the
# table gives their share), so one 1×1 layer more or less per block changes the totals by a
# moderate amount.

# %%
variants = ["nin_d2l_1x1", "nin_d2l", "nin_d2l_3x1x1"]
counts = {name: totals(nin.get_spec(name)) for name in variants}
base = counts["nin_d2l"]
print(
    text_table(
        ("model", "convolutions", "params", "MACs", "params vs nin_d2l", "MACs vs nin_d2l"),
        [
            (
                name,
                c["convs"],
                f"{c['params']:,}",
                f"{c['macs'] / 1e6:,.1f} M",
                f"{c['params'] / base['params'] - 1:+.1%}",
                f"{c['macs'] / base['macs'] - 1:+.1%}",
            )
            for name, c in counts.items()
        ],
        right=(1, 2, 3, 4, 5),
    )
)
spatial = sum(r.macs for r in nin.layer_table(nin.get_spec("nin_d2l")) if r.name.endswith(".conv0"))
print(f"\nthe four spatial convolutions alone: {spatial / base['macs']:.1%} of nin_d2l's MACs")
assert spatial > base["macs"] / 2
step = counts["nin_d2l_3x1x1"]["params"] - base["params"]
assert step == base["params"] - counts["nin_d2l_1x1"]["params"]  # each 1×1 layer per block costs the same
print(f"one more 1×1 layer in every block: {step:+,} parameters")

# %% [markdown]
# What does the extra depth buy? The answer needs training. The d2l NiN at 224×224 is far too
# slow for this script, so the comparison below uses the small `nin_mnist` (the same mlpconv
# structure at MNIST scale) with one, two or three 1×1 convolutions per block. To fit the
# time budget the digits are shrunk to 14×14, and every variant gets the same small budget:
# one epoch over the 4,000 training digits of `mnist5k`, with the same recipe and three
# seeds each. One epoch measures how quickly each variant starts to learn, not the accuracy
# it would finally reach. A single short run cannot tell a real difference from luck, so the
# script compares the variants pair by pair, and calls one better only if its worst seed beats
# the other's best. With three seeds such a verdict is a hint, not a result.


# %%
def with_mlp_depth(spec: nin.NiNSpec, n: int) -> nin.NiNSpec:
    """``spec`` with ``n`` 1×1 convolutions per block: the first 1×1 width repeated, and the
    block's output width kept for the last one."""
    layers = []
    for layer in spec.layers:
        if isinstance(layer, nin.NiNBlock):
            first, hidden, last = layer.convs[0], layer.convs[1].out_channels, layer.convs[-1].out_channels
            mlp = (hidden,) * (n - 1) + (last,)
            layer = nin.nin_block(first.out_channels, first.kernel, first.stride, first.padding, mlp=mlp)
        layers.append(layer)
    return spec.replace(name=f"{spec.name}_{n}x1x1", layers=tuple(layers))


assert with_mlp_depth(nin.get_spec("nin_mnist"), 2) == nin.get_spec("nin_mnist").replace(name="nin_mnist_2x1x1")

SIZE, SEEDS = 14, (0, 1, 2)
if "torch" in available:
    import torch

    from nin.loaders import load_mnist5k
    from nin.train import Recipe, fit, get_trainer

    # One thread, unless OMP_NUM_THREADS says otherwise: where other processes share the
    # cores, more threads than free cores make every small step wait at OpenMP's barriers.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)

    digits = load_mnist5k(input_size=SIZE)
    assert len(digits.y_train) == 4000
    print(digits)
    recipe = Recipe(epochs=1, batch_size=16, lr=0.02, warmup_epochs=0.1, dropout=False)
    results, rows = {}, []
    for n in (1, 2, 3):
        spec = with_mlp_depth(nin.get_spec("nin_mnist", input_size=SIZE), n)
        start, accuracy = time.perf_counter(), []
        for seed in SEEDS:
            run = recipe.replace(seed=seed)
            with tempfile.TemporaryDirectory() as out:
                history = fit(get_trainer("torch", spec, run), digits, run, out, progress=False)
            accuracy.append(history[-1]["test_acc"])
        results[n] = accuracy
        c = totals(spec)
        rows.append(
            (
                n,
                f"{c['params']:,}",
                f"{c['macs'] / 1e6:.2f} M",
                " ".join(f"{a:.3f}" for a in accuracy),
                f"{np.mean(accuracy):.3f}",
                f"{time.perf_counter() - start:.1f} s",
            )
        )
    print(f"torch, {recipe.epochs} epoch, batch {recipe.batch_size}, lr {recipe.lr}, seeds {SEEDS}")
    print(
        text_table(("1×1 per block", "params", "MACs", "test acc per seed", "mean", "time"), rows, right=(1, 2, 4, 5))
    )
    print()
    for a, b in ((1, 2), (2, 3), (1, 3)):
        if min(results[a]) > max(results[b]) or min(results[b]) > max(results[a]):
            better = a if min(results[a]) > max(results[b]) else b
            print(f"{a} vs {b} 1×1 per block: {better} better on every seed (the seed ranges do not overlap)")
        else:
            print(f"{a} vs {b} 1×1 per block: the seed ranges overlap, no verdict at this budget")
else:
    print("note: torch is not installed; skipped the training comparison (the counts above stand)")

# %% [markdown]
# ## (b) 3×3 convolutions in place of the 1×1 ones
#
# `nin_d2l_3x3` keeps every layer but gives the "1×1" convolutions a 3×3 kernel, padded by one
# so that the shapes do not change. Each of those layers then does nine times the MACs. The
# network also sees more of the image: the receptive field (the input window that one output
# cell depends on) grows by two pixels at that layer's resolution, for each such layer.


# %%
def receptive_field(spec: nin.NiNSpec) -> int:
    """Side of the input window seen by one cell of the last block (first spatial axis)."""
    field, jump = 1, 1
    for layer in spec.layers:
        windows = [(cv.kernel[0], cv.stride[0]) for cv in layer.convs] if isinstance(layer, nin.NiNBlock) else []
        if isinstance(layer, nin.MaxPool | nin.AvgPool):
            windows = [(layer.kernel[0], layer.stride[0])]
        for kernel, stride in windows:
            field, jump = field + (kernel - 1) * jump, jump * stride
    return field


d2l, d2l_3x3 = nin.get_spec("nin_d2l"), nin.get_spec("nin_d2l_3x3")
assert nin.output_shapes(d2l) == nin.output_shapes(d2l_3x3)  # same shapes, layer by layer
mlp_layers = [r for r in nin.layer_table(d2l) if r.kind.startswith("conv 1×1")]
mlp_layers_3x3 = [r for r in nin.layer_table(d2l_3x3) if r.name in {m.name for m in mlp_layers}]
assert sum(r.macs for r in mlp_layers_3x3) == 9 * sum(r.macs for r in mlp_layers)
rows = []
for name, spec, mlp in (("nin_d2l", d2l, mlp_layers), ("nin_d2l_3x3", d2l_3x3, mlp_layers_3x3)):
    c = totals(spec)
    rows.append(
        (
            name,
            f"{sum(r.params for r in mlp):,}",
            f"{c['params']:,}",
            f"{c['macs'] / 1e6:,.1f} M",
            f"{receptive_field(spec)}×{receptive_field(spec)}",
        )
    )
print(text_table(("model", "params in the 'MLP' layers", "params", "MACs", "receptive field"), rows, right=(1, 2, 3)))
c, c3 = totals(d2l), totals(d2l_3x3)
print(f"\n3×3 instead of 1×1: {c3['params'] / c['params']:.2f}× the parameters, {c3['macs'] / c['macs']:.2f}× the MACs")
side = d2l.input_size[0]
for name, spec in (("nin_d2l", d2l), ("nin_d2l_3x3", d2l_3x3)):
    field = receptive_field(spec)
    print(
        f"{name}: a last-block cell sees {field}×{field} input pixels, {'more than' if field > side else 'part of'} the {side}×{side} input"
    )

# %% [markdown]
# The mlpconv block is no longer a per-pixel perceptron: it is three stacked spatial
# convolutions, a VGG-style stack. It is more expressive and much more expensive, and with it
# NiN loses the distinction the paper drew between spatial filtering and per-pixel mixing.

# %% [markdown]
# ## (c) Global average pooling vs a fully connected layer
#
# `nin_d2l_fc` replaces the classifier block and the global average pooling with a single
# linear layer from the flattened 384×5×5 features to the classes. The first tutorial
# (`01_nin_explained.py`) compares it with an AlexNet-style head as well. Accuracy would need
# full Fashion-MNIST training at 224×224, which does not fit here, so the answer below covers
# parameters, computation and what is lost.

# %%
fc = nin.get_spec("nin_d2l_fc")
head = {r.name: r for r in nin.layer_table(fc)}["head"]
classifier = [r for r in nin.layer_table(d2l) if r.name.startswith("block3")]
print(
    text_table(
        ("head", "params", "MACs"),
        [
            (
                "classifier block + GAP (nin_d2l)",
                f"{sum(r.params for r in classifier):,}",
                f"{sum(r.macs for r in classifier):,}",
            ),
            ("linear head (nin_d2l_fc)", f"{head.params:,}", f"{head.macs:,}"),
        ],
        right=(1, 2),
    )
)
cf = totals(fc)
print(f"\nwhole network: {cf['params'] / c['params'] - 1:+.1%} parameters, {cf['macs'] / c['macs'] - 1:+.2%} MACs")
assert head.params > sum(r.params for r in classifier) and head.macs < sum(r.macs for r in classifier)
assert abs(cf["macs"] - c["macs"]) < 0.01 * c["macs"]
print("class activation maps with the linear head:", class_map_problem(fc))
assert class_map_problem(d2l) is None

# %% [markdown]
# So the small linear head (10 outputs straight from the features) has more parameters than
# the classifier block but does less arithmetic, and the difference in speed is a fraction of
# a percent of the network's MACs. What the linear head costs is structural: it ties the
# network to one input size, and it removes the class maps (the third tutorial shows them).
# The AlexNet-style two-hidden-layer head (first tutorial) is where the parameter count
# explodes.

# %% [markdown]
# ## (d) A NiN family designed like VGG-11, VGG-16 and VGG-19
#
# VGG's recipe: stages of identical 3×3 layers, the width doubling from stage to stage, a 2×2
# max pool between stages, and depth varied by adding layers to the later stages. The zoo's
# `nin_depth11/16/19` apply it to mlpconv blocks (each a 3×3 convolution and two 1×1 ones),
# with VGG's stage counts and half its widths, for 3×32×32 inputs, ending in NiN's
# classifier block and global average pooling.

# %%
rows = []
for name in ("nin_depth11", "nin_depth16", "nin_depth19"):
    spec = nin.get_spec(name)
    assert (spec.in_channels, spec.input_size) == (3, (32, 32))
    c = totals(spec)
    widths = "-".join(str(b.convs[0].out_channels) for b in spec.blocks()[:-1])
    rows.append(
        (
            name,
            len(spec.blocks()),
            c["convs"],
            widths,
            f"{c['params']:,}",
            f"{c['macs'] / 1e6:,.1f} M",
            f"{c['activations']:,}",
        )
    )
print(
    text_table(
        ("model", "blocks", "convolutions", "feature block widths", "params", "MACs", "activations / example"),
        rows,
        right=(1, 2, 4, 5, 6),
    )
)

# %% [markdown]
# ## (e) Resource use of the d2l NiN
#
# * **Parameters and computation** come straight from the layer table. A forward pass costs
#   2 FLOPs per MAC. A training step costs about three forward passes: the forward pass,
#   the gradient with respect to the activations, and the gradient with respect to the weights.
# * **Training memory** (float32): the weights, their gradients and the SGD momentum buffers
#   (three copies of the parameters), plus everything the backward pass needs from the
#   forward pass. This estimate counts the input and every layer's output once, per example.
#   Frameworks add bookkeeping such as max-pool indices and dropout masks, and a convolution
#   may need extra workspace.
# * **Inference memory**: the weights, plus, per example, the largest input + output pair of
#   any single layer. Only those two activations need to exist at once.

# %%
rows = nin.layer_table(d2l)
params, macs = nin.param_count(d2l), nin.mac_count(d2l)
inputs = d2l.in_channels * math.prod(d2l.input_size)
stored = inputs + sum(r.activations for r in rows)  # what the backward pass reads, per example
sizes = [inputs, *(r.activations for r in rows)]
live_pair = max(a + b for a, b in pairwise(sizes))  # largest layer input + output

print(f"parameters: {params:,} ({mib(4 * params)} float32)")
print(f"forward pass: {macs / 1e6:,.1f} M MACs = {2 * macs / 1e9:.2f} GFLOPs per example")
print(f"training step: about {3 * 2 * macs / 1e9:.2f} GFLOPs per example")
print(f"activations kept for the backward pass: {stored:,} values = {mib(4 * stored)} per example\n")
table = []
for batch in (1, 128):
    train = 4 * (3 * params + batch * stored)
    infer = 4 * (params + batch * live_pair)
    table.append((batch, mib(4 * params), mib(4 * 2 * params), mib(4 * batch * stored), mib(train), mib(infer)))
print(
    text_table(
        ("batch", "weights", "grads + momentum", "stored activations", "training total", "inference total"),
        table,
        right=(0, 1, 2, 3, 4, 5),
    )
)

# %% [markdown]
# A measurement to check the estimate against: the growth of this process's peak resident
# memory during the first PyTorch training step of a fresh `nin_d2l` (batch 16, so that it
# stays quick). Linux records a process's peak in `/proc/self/status` (`VmHWM`),
# and writing `5` to `/proc/self/clear_refs` resets it. Elsewhere the cell prints a note.
# The measured number includes everything the allocator and the convolution library hold,
# so it is expected to be near the estimate rather than equal to it.

# %%
status = Path("/proc/self/status")


def resident() -> tuple[int, int]:
    """(current, peak) resident memory of this process, in bytes."""
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


if "torch" not in available:
    print("note: torch is not installed; skipped the memory measurement")
elif not status.exists() or not Path("/proc/self/clear_refs").exists():
    print("note: no /proc/self/status here (not Linux); skipped the memory measurement")
else:
    from nin.train import Recipe, get_trainer

    batch = 16
    trainer = get_trainer("torch", d2l, Recipe(batch_size=batch))
    x = np.random.default_rng(0).random((batch, 1, *d2l.input_size), dtype=np.float32)
    y = np.arange(batch) % d2l.num_classes
    before, _ = resident()
    Path("/proc/self/clear_refs").write_text("5")  # peak := current
    start = time.perf_counter()
    trainer.step(x, y, lr=0.01)
    seconds = time.perf_counter() - start
    _, peak = resident()
    estimate = 4 * (2 * params + batch * stored)  # the weights exist already: grads, momentum, activations
    print(f"one training step at batch {batch}: {seconds:.1f} s")
    print(
        f"measured peak growth: {mib(peak - before)}; estimate (grads + momentum + stored activations): {mib(estimate)}"
    )
    print(f"measured / estimated: {(peak - before) / estimate:.2f}")

# %% [markdown]
# ## (f) Reducing 384×5×5 to 10×5×5 in one step
#
# In `nin_d2l` a single 3×3 convolution (`block3.conv0`) maps the 384 feature channels straight
# to one channel per class. The 1×1 convolutions after it have only 10 channels to mix, so the
# per-pixel perceptron of the last block is 10 units wide, and it can only recombine class
# evidence that the one convolution already computed. A 10-wide ReLU layer can also silence a
# class: if a class's channel is negative at every position, its map is zero, its score is
# exactly 0, and no gradient reaches the layers below through it. The spec makes the squeeze
# visible:

# %%
table = {r.name: r for r in nin.layer_table(d2l)}
into, out = table["dropout0"], table["block3.conv0"]
assert (into.output_shape, out.output_shape) == ((384, 5, 5), (10, 5, 5))
print(
    f"block3.conv0 ({out.kind}): {into.activations:,} values in, {out.activations:,} out ({into.activations / out.activations:.1f}× fewer)"
)
print(f"its parameters: {out.params:,}; each 1×1 layer after it: {table['block3.conv1'].params:,}")

# %% [markdown]
# The alternatives reduce gradually and keep a wider perceptron before the classes: the
# authors' own ImageNet NIN (`nin_imagenet`) widens to 1024 channels in its classifier block
# and only the last 1×1 convolution maps to the classes. Below, the d2l classifier block is
# compared with two such blocks, built by swapping the last block of the spec. The cost is
# shown next to the whole network's.

# %%
imagenet = nin.get_spec("nin_imagenet")
assert tuple(cv.out_channels for cv in imagenet.blocks()[-1].convs) == (1024, 1024, imagenet.num_classes)
classifiers = {
    "one step: 384 → 10 → 10 → 10 (d2l)": nin.nin_block(10, 3, 1, 1),
    "gradual: 384 → 96 → 96 → 10": nin.nin_block(96, 3, 1, 1, mlp=(96, 10)),
    "wide, as nin_imagenet: 384 → 1024 → 1024 → 10": nin.nin_block(1024, 3, 1, 1, mlp=(1024, 10)),
}
rows = []
for label, block in classifiers.items():
    layers = tuple(block if layer is d2l.blocks()[-1] else layer for layer in d2l.layers)
    spec = d2l.replace(name="classifier_variant", layers=layers)
    last = [r for r in nin.layer_table(spec) if r.name.startswith("block3")]
    narrowest = min(cv.out_channels for cv in block.convs[:-1])
    rows.append(
        (
            label,
            narrowest,
            f"{sum(r.params for r in last):,}",
            f"{sum(r.macs for r in last) / 1e6:.2f} M",
            f"{nin.param_count(spec):,}",
        )
    )
print(
    text_table(
        ("classifier block", "narrowest hidden width", "block params", "block MACs", "network params"),
        rows,
        right=(1, 2, 3, 4),
    )
)
