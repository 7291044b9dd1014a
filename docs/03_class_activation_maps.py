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
# # Class activation maps: where a NiN looks
#
# A class activation map (CAM; Zhou, Khosla, Lapedriza, Oliva, Torralba, *Learning Deep
# Features for Discriminative Localization*, CVPR 2016, [arXiv:1512.04150](https://arxiv.org/abs/1512.04150))
# shows which parts of an image a class's score comes from. For a network that ends in global
# average pooling followed by a linear layer `w`, the map of class `k` is `Σ_c w_kc · f_c`,
# the weighted sum of the last feature maps `f_c`. A NiN has no such linear layer: its last
# mlpconv block outputs one map per class, and global average pooling turns each map into
# that class's score. The paper calls these maps "confidence maps" (Lin et al. 2014, §3.2). So
# in a NiN the block's output *is* the class activation map, and no extra weights are needed.
#
# This tutorial trains the small `nin_mnist` briefly with PyTorch, checks numerically that
# averaging the maps gives the logits, draws the maps over the digits with `nin.visualize`,
# and shows that every installed framework computes the same maps from the trained weights.
#
# `python docs/03_class_activation_maps.py --out DIR` writes the pictures to `DIR` (default:
# a new temporary folder). Every number comes from the code below: printed, or checked with
# an `assert`.

# %%
import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

import nin
from nin import reference, visualize
from nin.conformance import FORWARD_RTOL, max_rel_error
from nin.loaders import load_mnist5k, resize
from nin.tables import text_table

parser = argparse.ArgumentParser(description="class activation maps of a briefly trained nin_mnist")
parser.add_argument("--out", help="folder for the pictures (default: a new temporary folder)")
args, _ = parser.parse_known_args()  # a notebook kernel passes arguments of its own
out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nin_cam_"))

available = nin.available_backends()
print("backends installed:", ", ".join(available) or "none")

# %% [markdown]
# ## Train `nin_mnist` for a short while
#
# `nin_mnist` follows the layout of the authors' CIFAR-10 NIN with narrower blocks, for
# 28×28 digits. Its last block ends in a 1×1 convolution with one output channel per class.
# It is trained here
# on the 4,000 training digits of `mnist5k` (a 5,000-digit MNIST sample that ships with
# the package, so nothing is downloaded).
#
# The recipe is chosen for speed, not for the best accuracy: two epochs, dropout off, a short
# warmup and a small learning rate with small batches, which gets `nin_mnist` past its
# slow start quickly. The default `nin.train.Recipe` trains for longer (the next cell prints
# how long) and gets further.

# %%
spec = nin.get_spec("nin_mnist")
digits = load_mnist5k()
assert spec.input_size == (28, 28) and spec.blocks()[-1].out_channels == spec.num_classes
assert (len(digits.y_train), len(digits.y_train) + len(digits.y_test)) == (4000, 5000)
print(digits)
print(f"{spec.name}: {nin.param_count(spec):,} parameters; last block output {nin.output_shapes(spec)['block2.conv2']}")

if "torch" in available:
    import torch

    from nin.train import Recipe, fit, get_trainer

    # One thread, unless OMP_NUM_THREADS says otherwise: where other processes share the
    # cores, more threads than free cores make every small step wait at OpenMP's barriers.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)

    recipe = Recipe(epochs=2, batch_size=16, lr=0.02, warmup_epochs=0.1, dropout=False)
    print(f"recipe: {recipe}")
    print(f"(the default recipe runs {Recipe().epochs} epochs)")
    trainer = get_trainer("torch", spec, recipe)
    with tempfile.TemporaryDirectory() as run_dir:
        history = fit(trainer, digits, recipe, run_dir, progress=False)
    for record in history:
        print(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.3f}, "
            f"test accuracy {record['test_acc']:.3f} ({record['seconds']:.1f} s)"
        )
    weights = trainer.export_state()["weights"]
    note = f"torch, {recipe.epochs} epochs on mnist5k, test accuracy {history[-1]['test_acc']:.3f}"
else:
    weights = nin.init_weights(spec, seed=0, method="kaiming")
    note = "untrained: seeded initial weights"
    print("note: torch is not installed; the maps below come from untrained, seeded weights")

# %% [markdown]
# ## Global average pooling of the class maps *is* the logits
#
# `nin.visualize.class_maps` picks the last block's output from a forward pass's activations:
# one 7×7 map per class per digit. Averaging each map over its positions gives exactly the
# network's logits, up to float32 rounding, because nothing comes after the pooling.

# %%
x, labels = digits.x_test, digits.y_test
if "torch" in available:
    adapter = nin.get_backend("torch")
    logits, acts = adapter.forward(trainer.model, x), adapter.intermediates(trainer.model, x)
else:
    logits, acts = visualize.capture("numpy", spec, weights, x)
maps = visualize.class_maps(spec, acts)
assert maps.shape[2:] == (7, 7)
print(f"class maps: {maps.shape} (examples, classes, height, width); logits: {logits.shape}")
pooled = maps.mean(axis=(2, 3), dtype=np.float64)
error = float(np.abs(pooled - logits).max())
print(
    f"max |mean of each map − logit| over {len(x)} test digits: {error:.1e} (logits up to {np.abs(logits).max():.1f})"
)
assert error <= 1e-5 * np.abs(logits).max()
predicted = logits.argmax(axis=1)
print(f"test accuracy: {(predicted == labels).mean():.3f}")

# %% [markdown]
# One digit's map for its predicted class, as numbers: its mean is that class's score.

# %%
i = 0
k = int(predicted[i])
print(f"test digit {i}: label {labels[i]}, predicted {k}")
print(np.array2string(maps[i, k], precision=1, suppress_small=True, max_line_width=120))
print(f"mean of this map: {maps[i, k].mean():.4f}; logit of class {k}: {logits[i, k]:.4f}")

# %% [markdown]
# Where does the predicted class's map peak? MNIST digits are centred, so the classifier has
# no need to find them, and the evidence for a class may lie in blank space as much as on the
# strokes (the hole of a 0, the empty sides of a 1). The cell below enlarges each digit's
# predicted-class map to 28×28 (bilinear, as `nin.visualize` does for drawing) and counts how
# often its peak falls inside the digit's bounding box (the rows and columns that hold pixels
# above 0.5). A peak placed at random would land inside the box as often as the box's share of
# the image. The same count for the network's initial weights, before any training, is the
# other baseline: an untrained network's maps respond to the input's pixels too, class or no
# class.


# %%
def peak_in_box(maps: np.ndarray, predicted: np.ndarray, images: np.ndarray) -> tuple[float, float]:
    """(share of examples whose predicted-class map peaks inside the digit's bounding box,
    the boxes' mean share of the image)."""
    enlarged = resize(maps[np.arange(len(images)), predicted][:, None], images.shape[2:])[:, 0]
    inside, box_share = [], []
    for heat, image in zip(enlarged, images[:, 0], strict=True):
        rows, cols = np.flatnonzero((image > 0.5).any(axis=1)), np.flatnonzero((image > 0.5).any(axis=0))
        peak_row, peak_col = np.unravel_index(np.argmax(heat), heat.shape)
        inside.append(rows[0] <= peak_row <= rows[-1] and cols[0] <= peak_col <= cols[-1])
        box_share.append((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) / image.size)
    return float(np.mean(inside)), float(np.mean(box_share))


trained_rate, box_share = peak_in_box(maps, predicted, x)
print(f"the box covers {box_share:.1%} of the image on average: a random peak's rate")
print(f"the predicted class's map peaks inside the digit's bounding box for {trained_rate:.1%} of test digits")
if "torch" in available:
    untrained = adapter.build(spec, seed=recipe.seed, init=recipe.init)  # the weights training started from
    untrained_maps = visualize.class_maps(spec, adapter.intermediates(untrained, x))
    initial_rate, _ = peak_in_box(untrained_maps, adapter.forward(untrained, x).argmax(axis=1), x)
    print(f"with the initial, untrained weights: {initial_rate:.1%}")
    direction = "towards" if trained_rate > initial_rate else "away from"
    print(f"training moved the peaks {direction} the digit's box")

# %% [markdown]
# ## Drawing the maps
#
# `nin.visualize.cam_figure` draws the input next to the maps of the best-scoring classes,
# enlarged to the input size, on one colour scale (so brightness can be compared between
# classes), with the predicted class framed in red. `cam_gif` steps through all classes.
# A few test digits, one per class for the first three classes:


# %%
def show(pictures: list[Path]) -> None:
    """Say where each picture went and, in a notebook, show it (PNG or GIF) inline."""
    for path in pictures:
        print("wrote", path)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        for path in pictures:
            display(Image(filename=str(path)))


paths = []
for digit in range(3):
    i = int(np.flatnonzero(labels == digit)[0])
    one = {name: a[i : i + 1] for name, a in acts.items()}
    activation = visualize.class_activation(spec, x[i : i + 1], logits[i : i + 1], one)
    title = f"{spec.name} · test digit {i} (label {labels[i]})"
    paths.append(visualize.cam_figure(x[i], activation, out_dir / f"cam_{i}.png", title, digits.classes, note=note))
    if digit == 0:
        paths.append(visualize.cam_gif(x[i], activation, out_dir / f"cam_{i}_classes.gif", title, digits.classes))
show(paths)

# %% [markdown]
# ## What the first block sees
#
# The class maps are the last block's output. The earlier blocks' outputs are feature maps:
# `nin.visualize.feature_grid` draws every channel of one as a tile, each stretched to its
# own range, and `channel_gif` steps through the channels next to the input. The first
# block of the same network, for the first test digit of class 0:

# %%
i = int(np.flatnonzero(labels == 0)[0])
layer = visualize.block_outputs(spec)["block0"]
label = f"{spec.name} block0 ({layer}) · test digit {i}"
show(
    [
        visualize.feature_grid(acts[layer][i], out_dir / "block0_features.png", label, note=note),
        visualize.channel_gif(acts[layer][i], out_dir / "block0_channels.gif", label, x[i]),
    ]
)

# %% [markdown]
# ## Every framework draws the same maps
#
# The trained weights are canonical NumPy arrays, so any backend can load them. Each installed
# backend computes the class maps of a few test digits, and each result is compared with the
# NumPy reference (float64).

# %%
sample = x[:8]
_, reference_acts = reference.forward(spec, weights, sample)
want = visualize.class_maps(spec, reference_acts)
by_backend, rows = {}, []
for name in available:
    backend_logits, backend_acts = visualize.capture(name, spec, weights, sample)
    got = visualize.class_maps(spec, backend_acts)
    by_backend[name] = got
    error = max_rel_error(got, want)
    assert error <= FORWARD_RTOL, f"{name}: class maps differ from the reference by {error:.1e}"
    same = bool((backend_logits.argmax(axis=1) == want.mean(axis=(2, 3)).argmax(axis=1)).all())
    rows.append((name, nin.get_backend(name).framework_version(), f"{error:.1e}", "yes" if same else "no"))
print(text_table(("backend", "framework", "max|Δ| / max|ref|", "same predictions"), rows))
if len(by_backend) > 1:
    worst = max(float(np.abs(a - b).max()) for a in by_backend.values() for b in by_backend.values())
    print(f"largest difference between any two backends: {worst:.1e} (map values up to {np.abs(want).max():.1f})")
print(f"every available backend's class maps match the NumPy reference within {FORWARD_RTOL:g} of the largest value")
