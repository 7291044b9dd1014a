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
# # Network in Network, explained through the suite
#
# Lin, Chen and Yan's *Network In Network* (ICLR 2014, [arXiv:1312.4400](https://arxiv.org/abs/1312.4400))
# changed two things in the convolutional networks of its day:
#
# 1. **mlpconv blocks.** Every k×k convolution is followed by a small multilayer perceptron
#    that slides over the image, pixel by pixel. In practice that perceptron is a stack of
#    1×1 convolutions, each followed by ReLU.
# 2. **Global average pooling instead of fully connected layers.** The last block outputs one
#    map per class, and a class's score is the mean of its map.
#
# This tutorial shows both with the suite's own code: every framework's `nin_block` side
# by side, giving the same output for the same weights; the layer table of the d2l book's NiN;
# a 1×1 convolution taken apart into a fully connected layer applied to every pixel; and what
# global average pooling saves compared with a fully connected head.
#
# Run it as a script (`python docs/01_nin_explained.py`) or open it as a notebook
# (`jupytext --to ipynb docs/01_nin_explained.py`). Every number comes from the code below:
# the code either prints it or checks it with an `assert`. Cells that need a framework that
# is not installed print a note and skip their work.

# %%
import math
from itertools import pairwise

import numpy as np

import nin
from nin import reference
from nin.conformance import FORWARD_RTOL, max_rel_error
from nin.frameworks import source
from nin.summary import backend_layer_table, summary_text
from nin.tables import text_table

available = nin.available_backends()
print("backends installed:", ", ".join(available) or "none")
for name in nin.list_backends():
    if name not in available:
        print(f"note: {name} is not installed; the cells that need it skip it")

# %% [markdown]
# ## One mlpconv block, written once as data
#
# The suite describes a network as frozen dataclasses (`nin.spec`), with no framework
# involved. This is the first block of the d2l NiN: an 11×11 convolution with stride 4,
# followed by two 1×1 convolutions of the same width.

# %%
first_block = nin.nin_block(96, 11, stride=4, padding=0)
for c, conv in enumerate(first_block.convs):
    print(f"conv{c}: {conv.out_channels} channels, kernel {conv.kernel}, stride {conv.stride}, padding {conv.padding}")

# %% [markdown]
# ## The `nin_block`s side by side
#
# Each backend's `model.py` turns that data into native layers: an `nn.Sequential` in PyTorch,
# a `keras.Sequential` in TensorFlow, a `flax.linen` module in JAX, a `HybridSequential` in
# MXNet, a `paddle.nn.Sequential` in PaddlePaddle and an `mlx.nn.Module` in MLX. The functions
# have the same name and the same structure: one convolution per entry of `block_spec.convs`,
# each followed by ReLU. (The JAX and MLX `nin_block`s build an `MlpConv` module, so that module
# is printed too.)
#
# <!-- framework-tabs: nin_block -->

# %%
for name in nin.list_backends():
    if name not in available:
        print(f"=== {name}: not installed, skipped\n")
        continue
    print(f"=== {name}: nin/frameworks/{name}/model.py")
    # read from the file (nin.frameworks.source), so printing the code imports no framework
    print("\n\n".join(snippet.code for snippet in source.definition(name, "model", "nin_block", with_classes=True)))
    print()

# %% [markdown]
# ## Same weights, same output, in every framework
#
# A network made of a single block, followed by global average pooling, is enough to compare
# the blocks. The block below uses a 5×5 convolution with stride 2 and padding 2. Every
# backend's adapter builds the native model, loads the same *canonical* weights (one
# framework-free `dict` of NumPy arrays, converted to each framework's layout inside the
# adapter), and returns the block's output in NCHW layout. The NumPy reference computes the
# same thing in float64.

# %%
one_block = nin.NiNSpec(
    name="one_block",
    in_channels=3,
    input_size=(16, 16),
    num_classes=8,
    layers=(nin.nin_block(8, 5, stride=2, padding=2), nin.GlobalAvgPool()),
)
print(summary_text(one_block))

weights = nin.init_weights(one_block, seed=1, method="kaiming")
x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
_, reference_acts = reference.forward(one_block, weights, x)
want = reference_acts["block0.conv2"]

block_outputs, rows = {}, []
for name in available:
    adapter = nin.get_backend(name)
    model = adapter.build(one_block)  # seeded weights...
    adapter.load_state(model, weights)  # ...replaced by the shared ones
    got = adapter.intermediates(model, x)["block0.conv2"]
    block_outputs[name] = got
    error = max_rel_error(got, want)
    assert error <= FORWARD_RTOL, f"{name}: block output differs from the reference by {error:.1e}"
    rows.append(
        (name, adapter.framework_version(), type(model).__name__, "×".join(map(str, got.shape)), f"{error:.1e}")
    )
print(text_table(("backend", "framework", "model type", "block output", "max|Δ| / max|ref|"), rows))
if len(block_outputs) > 1:
    worst = max(float(np.abs(a - b).max()) for a in block_outputs.values() for b in block_outputs.values())
    print(
        f"largest difference between any two frameworks: {worst:.1e} (block output values up to {np.abs(want).max():.2f})"
    )
print(f"every available backend matches the NumPy reference within {FORWARD_RTOL:g} of the largest value")

# %% [markdown]
# Why the spec pads explicitly: the d2l book's TensorFlow version writes `padding="same"`.
# For this stride-2 block on a 16×16 input, "same" produces the same output size but puts
# one fewer row and column of zeros on the top and left (TensorFlow puts the odd cell on the
# bottom/right), so every window is shifted by one pixel. The NumPy reference shows how large
# the difference is:

# %%
conv0 = one_block.blocks()[0].convs[0]
n, k, s = one_block.input_size[0], conv0.kernel[0], conv0.stride[0]
out = -(-n // s)  # TensorFlow's "same": ceil(n / s) outputs...
total = max((out - 1) * s + k - n, 0)  # ...and this much padding, the smaller half first
same_pad = (total // 2, total - total // 2)
assert same_pad == (conv0.padding[0] - 1, conv0.padding[0])  # one cell less on the top and left
print(
    f"spec padding per side: {conv0.padding[0]}, {conv0.padding[0]};  TensorFlow 'same': {same_pad[0]}, {same_pad[1]}"
)
w0, b0 = weights["block0.conv0.weight"].astype(np.float64), weights["block0.conv0.bias"].astype(np.float64)
explicit, _ = reference.conv_forward(x.astype(np.float64), w0, b0, conv0.stride, conv0.padding)
padded = np.pad(x.astype(np.float64), [(0, 0), (0, 0), same_pad, same_pad])
same, _ = reference.conv_forward(padded, w0, b0, conv0.stride, (0, 0))
assert explicit.shape == same.shape
print(f"same output shape {explicit.shape[1:]}, but max|Δ| = {np.abs(explicit - same).max():.2f}")

# %% [markdown]
# ## The layer table of the d2l NiN
#
# `nin.layer_table` derives every layer's output shape, parameter count and
# multiply-accumulate count (MACs) from the spec, without a framework; `nin.summary` prints
# it the way d2l's `layer_summary` does, with totals. With a backend installed, the same table
# can be read off a live native model (its own parameter list and its actual activations), and
# it matches.

# %%
d2l = nin.get_spec("nin_d2l")
print(summary_text(d2l))
assert nin.param_count(d2l) == 1_992_166  # the number d2l's own code gives (tests/test_d2l_parity.py)

if "torch" in available:
    live = backend_layer_table(d2l, "torch")
    assert [(r.name, r.output_shape, r.params) for r in live] == [
        (r.name, r.output_shape, r.params) for r in nin.layer_table(d2l)
    ]
    print("\nread off a live PyTorch model: the same shapes and parameter counts, layer by layer")
else:
    print("\nnote: torch is not installed; skipped reading the table off a live model")

# %% [markdown]
# ## A 1×1 convolution is a fully connected layer applied to every pixel
#
# A 1×1 convolution with `C_in` inputs and `C_out` outputs looks at one pixel at a time: at
# every position it multiplies that pixel's `C_in` channel values by the same `C_out × C_in`
# matrix and adds the same bias. That is a fully connected layer applied to each pixel
# separately, with its weights shared across positions. The stack of 1×1 convolutions in an
# mlpconv block is therefore a multilayer perceptron run on every pixel: the "network in
# the network".
#
# Three ways to compute it, in float64:

# %%
rng = np.random.default_rng(0)
n, c_in, c_out, h, w = 2, 6, 4, 5, 7
x = rng.standard_normal((n, c_in, h, w))
kernel = rng.standard_normal((c_out, c_in, 1, 1))
bias = rng.standard_normal(c_out)
matrix = kernel[:, :, 0, 0]  # (C_out, C_in)

as_conv, _ = reference.conv_forward(x, kernel, bias, stride=(1, 1), padding=(0, 0))
as_einsum = np.einsum("nchw,oc->nohw", x, matrix) + bias[:, None, None]
pixels = x.transpose(0, 2, 3, 1).reshape(-1, c_in)  # one row per pixel: (N·H·W, C_in)
as_matmul = (pixels @ matrix.T + bias).reshape(n, h, w, c_out).transpose(0, 3, 1, 2)

print(f"{n * h * w} pixels, {c_in} channels in, {c_out} out")
print(f"convolution vs einsum over channels: max|Δ| = {np.abs(as_conv - as_einsum).max():.1e}")
print(f"convolution vs matrix product on the pixels: max|Δ| = {np.abs(as_conv - as_matmul).max():.1e}")
assert np.allclose(as_conv, as_einsum, rtol=0, atol=1e-12) and np.allclose(as_conv, as_matmul, rtol=0, atol=1e-12)
print(f"parameters either way: {c_out} × {c_in} + {c_out} = {kernel.size + bias.size}")

# %% [markdown]
# The same in PyTorch: an `nn.Conv2d` with a 1×1 kernel and an `nn.Linear` with the same
# weights, the latter applied to the pixels after moving the channels to the last axis.

# %%
if "torch" in available:
    import torch
    from torch import nn

    torch.manual_seed(0)
    conv1x1 = nn.Conv2d(c_in, c_out, kernel_size=1)
    linear = nn.Linear(c_in, c_out)
    with torch.no_grad():
        linear.weight.copy_(conv1x1.weight[:, :, 0, 0])
        linear.bias.copy_(conv1x1.bias)
        images = torch.from_numpy(x.astype(np.float32))
        y_conv = conv1x1(images)
        y_linear = linear(images.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    difference = (y_conv - y_linear).abs().max().item()
    n_conv = sum(p.numel() for p in conv1x1.parameters())
    n_linear = sum(p.numel() for p in linear.parameters())
    print(f"nn.Conv2d(kernel_size=1) vs nn.Linear on permuted pixels: max|Δ| = {difference:.1e} (float32)")
    print(f"parameters: Conv2d {n_conv}, Linear {n_linear}")
    assert difference < 1e-5 and n_conv == n_linear
else:
    print("note: torch is not installed; skipped the nn.Conv2d / nn.Linear comparison")

# %% [markdown]
# ## Global average pooling vs a fully connected head
#
# The d2l NiN ends with a classifier block: a 3×3 convolution that maps the 384 feature
# channels to one channel per class, two 1×1 convolutions, and global average pooling, which
# has no parameters. The d2l exercise variant `nin_d2l_fc` replaces the classifier block and
# the pooling with a single fully connected layer on the flattened features. AlexNet and VGG
# went further: two hidden layers of 4096 units before the classes. That head cannot be
# written in the spec (it allows a single linear layer), so its parameter and MAC counts are
# computed by hand from the feature shape.

# %%
fc = nin.get_spec("nin_d2l_fc")
features = nin.output_shapes(d2l)["dropout0"]
assert features == (384, 5, 5)
flat = math.prod(features)


def split(spec: nin.NiNSpec, head: tuple[str, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((params, MACs) of the layers named in ``head``, (params, MACs) of the rest)."""
    rows = nin.layer_table(spec)
    parts = ([r for r in rows if r.name.split(".")[0] in head], [r for r in rows if r.name.split(".")[0] not in head])
    return tuple((sum(r.params for r in part), sum(r.macs for r in part)) for part in parts)


(gap_params, gap_macs), (body_params, body_macs) = split(d2l, ("block3", "gap"))
(fc_params, fc_macs), (fc_body_params, fc_body_macs) = split(fc, ("head",))
assert (fc_body_params, fc_body_macs) == (body_params, body_macs)  # the same feature extractor

widths = (flat, 4096, 4096, d2l.num_classes)
alex_params = sum(o * i + o for i, o in pairwise(widths))
alex_macs = sum(o * i for i, o in pairwise(widths))

heads = [
    ("nin_d2l: classifier block + global avg-pool", gap_params, gap_macs),
    (f"nin_d2l_fc: linear {flat} → {d2l.num_classes}", fc_params, fc_macs),
    (f"AlexNet-style: {flat} → 4096 → 4096 → {d2l.num_classes}", alex_params, alex_macs),
]
print(f"features: {'×'.join(map(str, features))} = {flat:,} values per example")
print(f"feature extractor shared by all three: {body_params:,} parameters, {body_macs / 1e6:,.1f} M MACs\n")
print(
    text_table(
        ("head", "head params", "head MACs", "total params", "head share of params"),
        [(label, f"{p:,}", f"{m:,}", f"{body_params + p:,}", f"{p / (body_params + p):.1%}") for label, p, m in heads],
        right=(1, 2, 3, 4),
    )
)
print(f"\nthe AlexNet-style head alone has {alex_params / gap_params:,.0f}× the parameters of NiN's classifier block")
print(f"and {alex_params / (body_params + gap_params):.1f}× those of the whole d2l NiN")

# %% [markdown]
# Global average pooling also frees the network from one input size: a fully connected head
# expects exactly as many features as it was built for, while the NiN head averages whatever
# spatial size arrives.

# %%
print(
    "nin_d2l at 256×256:",
    nin.output_shapes(d2l, (256, 256))["block3.conv2"],
    "→",
    nin.output_shapes(d2l, (256, 256))["gap"],
)
print("nin_d2l accepts any input from", "×".join(map(str, nin.min_input_size(d2l))), "up")
try:
    nin.layer_table(fc, (256, 256))
except nin.InputError as error:
    print("nin_d2l_fc at 256×256:", error)
