"""Named NiN configurations, each with its source.

``list_models()`` names them; ``get_spec(name, num_classes=..., in_channels=...,
input_size=...)`` builds one.  Every config is a function of those three overrides, so the
last block's width follows ``num_classes``.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import SpecError, UnknownNameError
from .spec import (
    Dropout,
    GlobalAvgPool,
    Layer,
    Linear,
    NiNSpec,
    avg_pool,
    max_pool,
    nin_block,
)

_ZOO: dict[str, Callable[..., NiNSpec]] = {}


def register(fn: Callable[..., NiNSpec]) -> Callable[..., NiNSpec]:
    _ZOO[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return list(_ZOO)


def get_spec(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: tuple[int, ...] | int | None = None,
) -> NiNSpec:
    """The spec of a zoo model, with optional overrides."""
    if name not in _ZOO:
        raise UnknownNameError(f"unknown model {name!r}; known models: {', '.join(_ZOO)}")
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise SpecError(f"{name}: {key} must be a positive int; got {value!r}")
    sizes = (input_size,) if isinstance(input_size, int) else (input_size or ())
    if any(not isinstance(v, int) or v <= 0 for v in sizes):
        raise SpecError(f"{name}: input_size must be positive ints; got {input_size!r}")
    overrides = {}
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    if in_channels is not None:
        overrides["in_channels"] = in_channels
    if input_size is not None:
        overrides["input_size"] = input_size
    return _ZOO[name](**overrides)


def _size(input_size: tuple[int, ...] | int, ndim: int = 2) -> tuple[int, ...]:
    return (input_size,) * ndim if isinstance(input_size, int) else tuple(input_size)


# -- the d2l book and its exercises ---------------------------------------------------------


def _d2l_layers(num_classes: int, **block) -> tuple[Layer, ...]:
    return (
        nin_block(96, 11, 4, 0, **block),
        max_pool(3, 2),
        nin_block(256, 5, 1, 2, **block),
        max_pool(3, 2),
        nin_block(384, 3, 1, 1, **block),
        max_pool(3, 2),
        Dropout(0.5),
        nin_block(num_classes, 3, 1, 1, **block),
        GlobalAvgPool(),
    )


_D2L = "d2l §8.3 (Zhang et al., Dive into Deep Learning)"


@register
def nin_d2l(num_classes=10, in_channels=1, input_size=224) -> NiNSpec:
    """The d2l book's NiN for Fashion-MNIST resized to 224×224 (floor-mode 3×3/2 max pools,
    dropout 0.5 before the classifier block).  Source: d2l §8.3.  1,992,166 parameters."""
    return NiNSpec("nin_d2l", in_channels, _size(input_size), num_classes, _d2l_layers(num_classes), _D2L)


@register
def nin_d2l_1x1(num_classes=10, in_channels=1, input_size=224) -> NiNSpec:
    """d2l §8.3 exercise 2: one 1×1 convolution per block instead of two."""
    layers = (
        nin_block(96, 11, 4, 0, mlp=(96,)),
        max_pool(3, 2),
        nin_block(256, 5, 1, 2, mlp=(256,)),
        max_pool(3, 2),
        nin_block(384, 3, 1, 1, mlp=(384,)),
        max_pool(3, 2),
        Dropout(0.5),
        nin_block(num_classes, 3, 1, 1, mlp=(num_classes,)),
        GlobalAvgPool(),
    )
    return NiNSpec("nin_d2l_1x1", in_channels, _size(input_size), num_classes, layers, "d2l §8.3 exercise 2")


@register
def nin_d2l_3x1x1(num_classes=10, in_channels=1, input_size=224) -> NiNSpec:
    """d2l §8.3 exercise 2: three 1×1 convolutions per block instead of two."""
    layers = (
        nin_block(96, 11, 4, 0, mlp=(96,) * 3),
        max_pool(3, 2),
        nin_block(256, 5, 1, 2, mlp=(256,) * 3),
        max_pool(3, 2),
        nin_block(384, 3, 1, 1, mlp=(384,) * 3),
        max_pool(3, 2),
        Dropout(0.5),
        nin_block(num_classes, 3, 1, 1, mlp=(num_classes,) * 3),
        GlobalAvgPool(),
    )
    return NiNSpec("nin_d2l_3x1x1", in_channels, _size(input_size), num_classes, layers, "d2l §8.3 exercise 2")


@register
def nin_d2l_3x3(num_classes=10, in_channels=1, input_size=224) -> NiNSpec:
    """d2l §8.3 exercise 2: 3×3 convolutions (padding 1) in place of the 1×1 ones."""
    layers = _d2l_layers(num_classes, mlp_kernel=3)
    return NiNSpec("nin_d2l_3x3", in_channels, _size(input_size), num_classes, layers, "d2l §8.3 exercise 2")


@register
def nin_d2l_fc(num_classes=10, in_channels=1, input_size=224) -> NiNSpec:
    """d2l §8.3 exercise 4's alternative: the classifier block and global average pooling
    replaced by a fully connected layer on the flattened 384×5×5 features (AlexNet-style)."""
    *features, _, _ = _d2l_layers(num_classes)
    layers = (*features, Linear(num_classes))
    return NiNSpec("nin_d2l_fc", in_channels, _size(input_size), num_classes, layers, "d2l §8.3 exercise 4")


def _depth_family(name: str, per_stage: tuple[int, ...], num_classes, in_channels, input_size) -> NiNSpec:
    """NiN blocks (3×3 conv + two 1×1) stacked in stages like VGG-11/16/19's conv stages,
    widths 32-64-128-256-256 (half of VGG's), a 2×2 max pool after each of the first four
    stages, dropout, then the NiN classifier block and global average pooling."""
    widths = (32, 64, 128, 256, 256)
    layers: list[Layer] = []
    for stage, (width, count) in enumerate(zip(widths, per_stage, strict=True)):
        layers += [nin_block(width, 3, 1, 1) for _ in range(count)]
        if stage < len(widths) - 1:
            layers.append(max_pool(2, 2))
    layers += [Dropout(0.5), nin_block(num_classes, 3, 1, 1), GlobalAvgPool()]
    source = "d2l §8.3 exercise 5, VGG-11/16/19 stages (arXiv:1409.1556)"
    return NiNSpec(name, in_channels, _size(input_size), num_classes, tuple(layers), source)


@register
def nin_depth11(num_classes=10, in_channels=3, input_size=32) -> NiNSpec:
    """A NiN depth family member after VGG-11: 1, 1, 2, 2, 2 blocks per stage (d2l exercise 5)."""
    return _depth_family("nin_depth11", (1, 1, 2, 2, 2), num_classes, in_channels, input_size)


@register
def nin_depth16(num_classes=10, in_channels=3, input_size=32) -> NiNSpec:
    """A NiN depth family member after VGG-16: 2, 2, 3, 3, 3 blocks per stage (d2l exercise 5)."""
    return _depth_family("nin_depth16", (2, 2, 3, 3, 3), num_classes, in_channels, input_size)


@register
def nin_depth19(num_classes=10, in_channels=3, input_size=32) -> NiNSpec:
    """A NiN depth family member after VGG-19: 2, 2, 4, 4, 4 blocks per stage (d2l exercise 5)."""
    return _depth_family("nin_depth19", (2, 2, 4, 4, 4), num_classes, in_channels, input_size)


# -- the authors' Caffe models ---------------------------------------------------------------


@register
def nin_cifar10(num_classes=10, in_channels=3, input_size=32) -> NiNSpec:
    """The authors' CIFAR-10 NIN from the Caffe model zoo (train_val.prototxt of "NIN-CIFAR10",
    github.com/BVLC/caffe/wiki/Model-Zoo): conv1 192 5×5 p2, cccp1 160, cccp2 96, max-pool 3/2,
    dropout 0.5, conv2 192 5×5 p2, cccp3 192, cccp4 192, avg-pool 3/2, dropout 0.5,
    conv3 192 3×3 p1, cccp5 192, cccp6 10, global average pool (Caffe's 8×8 avg-pool).
    Caffe pools round up (ceil mode).  966,986 parameters."""
    layers = (
        nin_block(192, 5, 1, 2, mlp=(160, 96)),
        max_pool(3, 2, ceil_mode=True),
        Dropout(0.5),
        nin_block(192, 5, 1, 2, mlp=(192, 192)),
        avg_pool(3, 2, ceil_mode=True),
        Dropout(0.5),
        nin_block(192, 3, 1, 1, mlp=(192, num_classes)),
        GlobalAvgPool(),
    )
    return NiNSpec("nin_cifar10", in_channels, _size(input_size), num_classes, layers, "Caffe model zoo, NIN-CIFAR10")


@register
def nin_imagenet(num_classes=1000, in_channels=3, input_size=224) -> NiNSpec:
    """The authors' ImageNet NIN from the Caffe model zoo ("NIN-Imagenet",
    github.com/BVLC/caffe/wiki/Model-Zoo): conv1 96 11×11/4, cccp1 96, cccp2 96, max-pool 3/2;
    conv2 256 5×5 p2, cccp3 256, cccp4 256, max-pool 3/2; conv3 384 3×3 p1, cccp5 384, cccp6 384,
    max-pool 3/2; dropout 0.5; conv4 1024 3×3 p1, cccp7 1024, cccp8 1000; global average pool
    (Caffe's 6×6 avg-pool).  Pools round up (ceil mode).  7,595,176 parameters."""
    layers = (
        nin_block(96, 11, 4, 0),
        max_pool(3, 2, ceil_mode=True),
        nin_block(256, 5, 1, 2),
        max_pool(3, 2, ceil_mode=True),
        nin_block(384, 3, 1, 1),
        max_pool(3, 2, ceil_mode=True),
        Dropout(0.5),
        nin_block(1024, 3, 1, 1, mlp=(1024, num_classes)),
        GlobalAvgPool(),
    )
    return NiNSpec("nin_imagenet", in_channels, _size(input_size), num_classes, layers, "Caffe model zoo, NIN-Imagenet")


@register
def nin_mnist(num_classes=10, in_channels=1, input_size=28) -> NiNSpec:
    """A small NiN for 28×28 digits, the default for ``nin train`` on CPU: the CIFAR-10 NIN's
    layout (5×5 mlpconv, max-pool, dropout, 5×5 mlpconv, avg-pool, dropout, 3×3 classifier
    block, global average pooling, Caffe ceil-mode pools) at a sixth of its widths."""
    layers = (
        nin_block(32, 5, 1, 2),
        max_pool(3, 2, ceil_mode=True),
        Dropout(0.5),
        nin_block(64, 5, 1, 2),
        avg_pool(3, 2, ceil_mode=True),
        Dropout(0.5),
        nin_block(64, 3, 1, 1, mlp=(64, num_classes)),
        GlobalAvgPool(),
    )
    return NiNSpec(
        "nin_mnist", in_channels, _size(input_size), num_classes, layers, "nin-suite, after Caffe NIN-CIFAR10"
    )


# -- small and volumetric --------------------------------------------------------------------


@register
def nin_tiny(num_classes=10, in_channels=3, input_size=16) -> NiNSpec:
    """A few-thousand-parameter NiN for fast tests.  It exercises every pooling rule: a
    ceil-mode max pool, a padded ceil-mode average pool (the clipped divisor), dropout, and
    blocks with unequal 1×1 widths."""
    layers = (
        nin_block(8, 3, 1, 1, mlp=(8, 6)),
        max_pool(3, 2, ceil_mode=True),
        nin_block(12, 3, 1, 1),
        avg_pool(3, 2, 1, ceil_mode=True),
        Dropout(0.5),
        nin_block(num_classes, 3, 1, 1),
        GlobalAvgPool(),
    )
    return NiNSpec("nin_tiny", in_channels, _size(input_size), num_classes, layers, "nin-suite test model")


@register
def nin3d(num_classes=10, in_channels=1, input_size=32) -> NiNSpec:
    """A volumetric NiN for voxel grids or medical volumes (1×32×32×32 by default): three
    mlpconv blocks of 3-D convolutions, as in the paper's blocks with every 2-D window made
    cubic, max pools 2×2×2, dropout, global average pooling.  In the spirit of VoxNet
    (Maturana & Scherer 2015) with NiN's classifier.

    The classifier block is 64 wide before its last 1×1 convolution narrows it to the classes
    (the paper's CIFAR-10 block is 192 → 192 → 10): with all three of its convolutions only
    ``num_classes`` wide (d2l's last block) it learned far less on the synthetic solids
    (``nin.volumes``).  It trains at lr 0.005, half the 2-D default (both measured:
    docs/training.md, "The volumetric NiN")."""
    layers = (
        nin_block(16, 3, 1, 1, ndim=3),
        max_pool(2, 2, ndim=3),
        nin_block(32, 3, 1, 1, ndim=3),
        max_pool(2, 2, ndim=3),
        Dropout(0.5),
        nin_block(64, 3, 1, 1, mlp=(64, num_classes), ndim=3),
        GlobalAvgPool(),
    )
    return NiNSpec("nin3d", in_channels, _size(input_size, 3), num_classes, layers, "nin-suite volumetric variant")
