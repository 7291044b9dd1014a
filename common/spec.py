"""The framework-free description of a Network in Network.

Source: Lin, Chen, Yan, "Network In Network", ICLR 2014, arXiv:1312.4400.

A spec is data: frozen dataclasses holding tuples and numbers, shared by 2-D and 3-D
networks (the rank is the length of ``input_size``). Every backend builds its native model
from a spec, the NumPy oracle (``nin.reference``) runs it, and ``nin.shapes`` derives shapes,
parameter and multiply-accumulate counts from it.

Pooling semantics, written down once for every backend:

* Output size per spatial dimension, input ``n``, kernel ``k``, stride ``s``, padding ``p``:
  floor mode ``(n + 2p - k) // s + 1``; ceil mode ``ceil((n + 2p - k) / s) + 1``, minus one
  when the last window would start at or beyond ``n + p`` (it must start inside the input or
  its left padding).  This is Caffe's and PyTorch's rule.
* Max pooling treats padding as −inf: a padded cell never wins.
* Average pooling sums zeros for padding and divides by the window clipped at ``n + p`` on
  the high side (not at ``n``, and never below the low padding): for a window starting at
  ``start = o*s - p`` the divisor along a dimension is ``min(start + k, n + p) - start``, and
  the divisor is the product over dimensions.  This is Caffe's rule and PyTorch's
  ``count_include_pad=True``.  Ceil-mode windows that hang past ``n + p`` therefore divide by
  fewer cells.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import SpecError


def _tuple(value: int | tuple[int, ...], ndim: int, what: str) -> tuple[int, ...]:
    """``3`` → ``(3, 3)`` for 2-D; a tuple must already have ``ndim`` entries."""
    if isinstance(value, int):
        return (value,) * ndim
    value = tuple(value)
    if len(value) != ndim or not all(isinstance(v, int) for v in value):
        raise SpecError(f"{what} must be an int or {ndim} ints for a {ndim}-D layer; got {value!r}")
    return value


@dataclass(frozen=True)
class Conv:
    """A convolution with bias; in a NiN block it is always followed by ReLU."""

    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_window("conv", self.kernel, self.stride, self.padding)
        if not isinstance(self.out_channels, int) or self.out_channels <= 0:
            raise SpecError(f"conv: out_channels must be a positive int; got {self.out_channels!r}")

    @property
    def ndim(self) -> int:
        return len(self.kernel)


@dataclass(frozen=True)
class NiNBlock:
    """An mlpconv block: a k×k convolution, then N more convolutions (1×1 in the paper), ReLU
    after every one of them.  ``convs[0]`` is the spatial convolution."""

    convs: tuple[Conv, ...]

    def __post_init__(self) -> None:
        if not self.convs:
            raise SpecError("a NiN block needs at least one convolution")

    @property
    def out_channels(self) -> int:
        return self.convs[-1].out_channels


@dataclass(frozen=True)
class _Pool:
    """The window of a pooling layer (the rules are in the module docstring)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        _check_pool(self)


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling; padding is −inf."""


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling; the divisor is the window clipped at input + padding."""


@dataclass(frozen=True)
class Dropout:
    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise SpecError(f"dropout rate must be in [0, 1); got {self.rate!r}")


@dataclass(frozen=True)
class GlobalAvgPool:
    """Average over all spatial positions, then flatten to (N, C)."""


@dataclass(frozen=True)
class Linear:
    """A fully connected head (the d2l exercise variant): flattens its input in (C, H, W)
    order — NCHW, whatever the framework's native layout — then maps it to ``out_features``."""

    out_features: int

    def __post_init__(self) -> None:
        if not isinstance(self.out_features, int) or self.out_features <= 0:
            raise SpecError(f"linear: out_features must be a positive int; got {self.out_features!r}")


Layer = NiNBlock | MaxPool | AvgPool | Dropout | GlobalAvgPool | Linear
Pool = MaxPool | AvgPool


@dataclass(frozen=True)
class NiNSpec:
    """A whole network: what goes in, the layers in order, and how many classes come out."""

    name: str
    in_channels: int
    input_size: tuple[int, ...]
    num_classes: int
    layers: tuple[Layer, ...]
    source: str = ""

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def ndim(self) -> int:
        """2 for images, 3 for volumes."""
        return len(self.input_size)

    def replace(self, **changes) -> NiNSpec:
        return dataclasses.replace(self, **changes)

    def named_layers(self) -> Iterator[tuple[str, Layer]]:
        """Top-level layers with their canonical names: ``block{b}``, ``pool{p}``,
        ``dropout{d}``, ``gap``, ``head`` (each kind numbered from 0 on its own)."""
        counts = {"block": 0, "pool": 0, "dropout": 0}
        for layer in self.layers:
            if isinstance(layer, NiNBlock):
                kind = "block"
            elif isinstance(layer, MaxPool | AvgPool):
                kind = "pool"
            elif isinstance(layer, Dropout):
                kind = "dropout"
            elif isinstance(layer, GlobalAvgPool):
                yield "gap", layer
                continue
            else:
                yield "head", layer
                continue
            yield f"{kind}{counts[kind]}", layer
            counts[kind] += 1

    def blocks(self) -> list[NiNBlock]:
        return [layer for layer in self.layers if isinstance(layer, NiNBlock)]


# -- the spec as JSON data ------------------------------------------------------------------

# fields that describe a spec but do not change the network it builds
_NOT_THE_NETWORK = frozenset({"source"})


def spec_json(spec: NiNSpec) -> dict:
    """The network a spec builds, as canonical JSON data: every dataclass field but the
    ``source`` note, each layer tagged with its ``type``, tuples as lists, and a field left out
    where it holds its default value — so a field added later with a default leaves the JSON
    of every existing spec unchanged.  A training checkpoint stores it as the spec's identity
    and ``--resume`` compares it (``nin.train``)."""

    def data(value):
        if dataclasses.is_dataclass(value):
            fields = {
                f.name: data(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in _NOT_THE_NETWORK and getattr(value, f.name) != f.default
            }
            return fields if isinstance(value, NiNSpec) else {"type": type(value).__name__, **fields}
        if isinstance(value, tuple | list):
            return [data(v) for v in value]
        return value

    return data(spec)


# -- constructors that read like the paper -------------------------------------------------


def conv(out_channels: int, kernel: int | tuple[int, ...], stride=1, padding=0, *, ndim=2) -> Conv:
    return Conv(
        out_channels,
        _tuple(kernel, ndim, "kernel"),
        _tuple(stride, ndim, "stride"),
        _tuple(padding, ndim, "padding"),
    )


def nin_block(
    out_channels: int,
    kernel: int | tuple[int, ...],
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    *,
    mlp: tuple[int, ...] | None = None,
    mlp_kernel: int = 1,
    ndim: int = 2,
) -> NiNBlock:
    """A k×k conv with ``out_channels`` then one conv per entry of ``mlp`` (default: two of
    ``out_channels``, as in the paper and d2l).  ``mlp_kernel=3`` gives the d2l exercise that
    swaps the 1×1 convolutions for 3×3 ones (padded to keep the size)."""
    widths = (out_channels, out_channels) if mlp is None else tuple(mlp)
    first = conv(out_channels, kernel, stride, padding, ndim=ndim)
    rest = tuple(conv(w, mlp_kernel, 1, mlp_kernel // 2, ndim=ndim) for w in widths)
    return NiNBlock((first, *rest))


def max_pool(kernel, stride=None, padding=0, *, ceil_mode=False, ndim=2) -> MaxPool:
    stride = kernel if stride is None else stride
    return MaxPool(
        _tuple(kernel, ndim, "kernel"),
        _tuple(stride, ndim, "stride"),
        _tuple(padding, ndim, "padding"),
        ceil_mode,
    )


def avg_pool(kernel, stride=None, padding=0, *, ceil_mode=False, ndim=2) -> AvgPool:
    stride = kernel if stride is None else stride
    return AvgPool(
        _tuple(kernel, ndim, "kernel"),
        _tuple(stride, ndim, "stride"),
        _tuple(padding, ndim, "padding"),
        ceil_mode,
    )


# -- structural checks (sizes that depend on the input are checked in nin.shapes) -----------


def _check_spec(spec: NiNSpec) -> None:
    where = f"spec {spec.name!r}"
    if spec.ndim not in (2, 3):
        raise SpecError(f"{where}: input_size must have 2 (H, W) or 3 (D, H, W) entries; got {spec.input_size!r}")
    if any(not isinstance(s, int) or s <= 0 for s in spec.input_size):
        raise SpecError(f"{where}: input_size entries must be positive ints; got {spec.input_size!r}")
    if not isinstance(spec.in_channels, int) or spec.in_channels <= 0:
        raise SpecError(f"{where}: in_channels must be a positive int; got {spec.in_channels!r}")
    if not isinstance(spec.num_classes, int) or spec.num_classes <= 0:
        raise SpecError(f"{where}: num_classes must be a positive int; got {spec.num_classes!r}")
    if not spec.layers:
        raise SpecError(f"{where}: has no layers")
    for name, layer in spec.named_layers():
        _check_layer(f"{where} {name}", layer, spec.ndim)
    *body, last = spec.layers
    for layer in body:
        if isinstance(layer, GlobalAvgPool | Linear):
            raise SpecError(
                f"{where}: {type(layer).__name__} must be the last layer (it flattens to classes); move it to the end"
            )
    if not isinstance(last, GlobalAvgPool | Linear):
        raise SpecError(f"{where}: must end in GlobalAvgPool or Linear to produce class scores; ends in {last!r}")
    if isinstance(last, Linear) and last.out_features != spec.num_classes:
        raise SpecError(f"{where}: head gives {last.out_features} outputs but num_classes is {spec.num_classes}")
    if isinstance(last, GlobalAvgPool):
        blocks = spec.blocks()
        if not blocks or blocks[-1].out_channels != spec.num_classes:
            got = blocks[-1].out_channels if blocks else spec.in_channels
            raise SpecError(
                f"{where}: global average pooling yields one score per channel, so the last block "
                f"needs num_classes={spec.num_classes} channels; it has {got}"
            )


def _check_layer(where: str, layer: Layer, ndim: int) -> None:
    """Every window in the layer must have the network's rank."""
    windows = (
        [(f"{where}.conv{c}", cv.kernel) for c, cv in enumerate(layer.convs)] if isinstance(layer, NiNBlock) else []
    )
    if isinstance(layer, MaxPool | AvgPool):
        windows = [(where, layer.kernel)]
    for name, kernel in windows:
        if len(kernel) != ndim:
            raise SpecError(f"{name}: kernel {kernel} is {len(kernel)}-D but the network is {ndim}-D")
    if not isinstance(layer, NiNBlock | MaxPool | AvgPool | Dropout | GlobalAvgPool | Linear):
        raise SpecError(
            f"{where}: unknown layer {layer!r}; expected NiNBlock, MaxPool, AvgPool, Dropout, GlobalAvgPool or Linear"
        )


def _check_pool(pool: MaxPool | AvgPool) -> None:
    what = "max-pool" if isinstance(pool, MaxPool) else "avg-pool"
    _check_window(what, pool.kernel, pool.stride, pool.padding)
    if any(2 * p > k for p, k in zip(pool.padding, pool.kernel, strict=True)):
        raise SpecError(
            f"{what}: padding {pool.padding} must be at most half the kernel {pool.kernel} "
            f"(a window made only of padding has no value)"
        )


def _check_window(what, kernel, stride, padding) -> None:
    if not len(kernel) == len(stride) == len(padding):
        raise SpecError(
            f"{what}: kernel {kernel}, stride {stride} and padding {padding} must have one entry per dimension"
        )
    for name, values, low in (("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0)):
        if any(not isinstance(v, int) or v < low for v in values):
            raise SpecError(f"{what}: {name} entries must be ints ≥ {low}; got {values}")
