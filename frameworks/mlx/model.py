"""Network in Network in MLX (``mlx.nn``), channels-last (NHWC / NDHWC).

Source: Lin, Chen, Yan, "Network In Network", ICLR 2014, arXiv:1312.4400; the code follows
Zhang et al., Dive into Deep Learning, §8.3 "Network in Network" (``nin_block`` and ``NiN``;
the book has no MLX tab, so this is its PyTorch code in ``mlx.nn``'s idiom), generalised to
any ``nin.NiNSpec``, 2-D or 3-D.

The attributes of ``NiN`` carry the canonical layer names (``block0``, ``pool0``,
``dropout0``, ``head``) and each block names its convolutions ``conv0``, ``conv1``, ..., so
the flattened parameter tree (``mlx.utils.tree_flatten(net.parameters())``) has the canonical
weight names (``block0.conv0.weight``), in MLX's layout: (out, kh, kw, in) kernels and a head
over (H, W, C)-flattened features; ``adapter.py`` converts.

Pooling follows ``nin.spec`` exactly.  MLX's ``nn.MaxPool2d``/``AvgPool2d`` pad both sides
alike and have no ceil mode, so ``MaxPool`` and ``AvgPool`` pad first, by the ``(low, high)``
amounts of ``nin.shapes.pool_padding`` (−inf for max, zeros for average; in ceil mode the
high side gets what the last window needs), and then pool the padded input unpadded.  MLX's
average divides by the whole window; where the spec's clipped divisor differs (a ceil-mode
window that hangs past input + padding) ``AvgPool`` rescales those outputs.

    >>> import nin
    >>> from nin.frameworks.mlx import NiN
    >>> net = NiN(nin.get_spec("nin_cifar10"))
    >>> logits = net(x_nhwc)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import mlx.core as mx
import mlx.nn as nn
import numpy as np

import nin
from nin.shapes import avg_pool_divisor, pool_padding

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_AVG_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


class MlpConv(nn.Module):
    """An mlpconv block: its convolutions ``conv0`` (the spatial one), ``conv1``, ... (the
    paper's 1×1 "cccp" layers), each followed by ReLU."""

    def __init__(self, in_channels: int, block_spec: nin.NiNBlock):
        super().__init__()
        self.names = [f"conv{c}" for c in range(len(block_spec.convs))]
        for name, cv in zip(self.names, block_spec.convs, strict=True):
            setattr(self, name, _CONV[cv.ndim](in_channels, cv.out_channels, cv.kernel, cv.stride, cv.padding))
            in_channels = cv.out_channels

    def outputs(self, x: mx.array) -> Iterator[mx.array]:
        """The output of every convolution, after its ReLU."""
        for name in self.names:
            x = nn.relu(conv(self[name], x))
            yield x

    def __call__(self, x: mx.array) -> mx.array:
        *_, out = self.outputs(x)
        return out


def conv(layer: nn.Conv2d | nn.Conv3d, x: mx.array) -> mx.array:
    """``layer(x)``, by ``convolve`` with the layer's own weight and bias."""
    return convolve(x, layer.weight, layer.get("bias"), layer.stride, layer.padding)


def convolve(
    x: mx.array, w: mx.array, b: mx.array | None, stride: tuple[int, ...], padding: tuple[int, ...]
) -> mx.array:
    """The convolution of ``nn.Conv2d`` (``3d``) with kernel ``w`` (out, *kernel, in) and bias
    ``b``; a 1×1 (1×1×1), stride-1, unpadded one — the paper's "cccp" layer, a small MLP over
    each pixel's channels — as the one matrix product it is, ``x @ Wᵀ + b`` over the channel
    axis (as ``nn.Linear`` computes), since MLX's CPU convolution copies its input into patches
    first also for 1×1 kernels (docs/benchmarks.md, "MLX")."""
    if all(k == 1 for k in (*w.shape[1:-1], *stride)) and not any(padding):
        rows = x.reshape(-1, x.shape[-1])  # all pixels as the rows of one product, not a batch of small ones
        y = (rows @ w.reshape(w.shape[0], w.shape[-1]).T).reshape(*x.shape[:-1], w.shape[0])
    else:
        y = (mx.conv2d if w.ndim == 4 else mx.conv3d)(x, w, stride=stride, padding=padding)
    return y if b is None else y + b


def nin_block(in_channels: int, block_spec: nin.NiNBlock) -> MlpConv:
    """An mlpconv block on ``in_channels`` input channels: the spatial convolution, then the
    1×1 ones, each followed by ReLU (2-D or 3-D, as the block's convolutions are).  MLX's
    convolutions create their weights at once, so it needs ``in_channels``, as PyTorch does."""
    return MlpConv(in_channels, block_spec)


class MaxPool(nn.Module):
    """Max pooling with −inf padding and Caffe's ceil mode, on the input padded with −inf by
    ``pool_padding``'s amounts (which add, in ceil mode, what the last window needs on the high
    side): the elementwise ``mx.maximum`` of the window's k×k strided slices, one per offset.
    It computes what ``nn.MaxPool2d`` computes (the maximum of each window), with a cheaper
    gradient: MLX differentiates ``nn.MaxPool2d``'s strided-window view through a scatter, 14×
    PyTorch's time for the max pools' backward of nin_d2l, and the slices through masks
    (docs/benchmarks.md, "MLX").  Where a window's maximum is tied, the gradient goes to its
    first cell in row-major order, as in ``nin.reference`` and PyTorch (``nn.MaxPool2d``
    splits it evenly): ``mx.maximum(a, b)`` gives a tie to ``b``, so the slices are taken in
    reverse order and the first cell's comes last."""

    def __init__(self, pool: nin.MaxPool):
        super().__init__()
        self.pool = pool

    def __call__(self, x: mx.array) -> mx.array:
        x = _pad(x, pool_padding(tuple(x.shape[1:-1]), self.pool), -math.inf)
        k, s = self.pool.kernel, self.pool.stride
        out = [(n - kk) // ss + 1 for n, kk, ss in zip(x.shape[1:-1], k, s, strict=True)]
        y = None
        for offsets in reversed(list(itertools.product(*(range(kk) for kk in k)))):
            window = tuple(slice(o, o + ss * (m - 1) + 1, ss) for o, ss, m in zip(offsets, s, out, strict=True))
            piece = x[(slice(None), *window, slice(None))]
            y = piece if y is None else mx.maximum(y, piece)
        return y


class AvgPool(nn.Module):
    """Average pooling with the spec's divisor: ``nn.AvgPool2d`` (``3d``) on the zero-padded
    input divides every window by its whole size, and the outputs of windows that hang past
    input + padding (ceil mode only) are rescaled to the clipped window's size."""

    def __init__(self, pool: nin.AvgPool):
        super().__init__()
        self.pool = pool
        self.reduce = _AVG_POOL[len(pool.kernel)](pool.kernel, pool.stride, 0)

    def __call__(self, x: mx.array) -> mx.array:
        size = tuple(x.shape[1:-1])
        y = self.reduce(_pad(x, pool_padding(size, self.pool), 0.0))
        scale = math.prod(self.pool.kernel) / avg_pool_divisor(size, self.pool)
        if np.all(scale == 1):
            return y
        return y * mx.array(scale[..., None], dtype=y.dtype)


def _pad(x: mx.array, pads: tuple[tuple[int, int], ...], value: float) -> mx.array:
    """``x`` (N, *spatial, C) padded with ``value`` by ``(low, high)`` per spatial dimension."""
    if not any(lo or hi for lo, hi in pads):
        return x
    return mx.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


class GlobalAvgPool(nn.Module):
    """The mean over every spatial position: one score per channel."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.mean(x, axis=tuple(range(1, x.ndim - 1)))


class Head(nn.Linear):
    """The fully connected head on the native (H, W, C)-flattened features (the adapter
    permutes the canonical (C, H, W)-ordered weight columns to match)."""

    def __call__(self, x: mx.array) -> mx.array:
        return super().__call__(mx.flatten(x, start_axis=1))


class NiN(nn.Module):
    """A Network in Network built from a spec, on channels-last input: mlpconv blocks, pools
    and dropout, then global average pooling (one score per channel of the last block) or a
    fully connected head.  ``net.train()`` turns dropout on, ``net.eval()`` off."""

    def __init__(self, spec: nin.NiNSpec):
        super().__init__()
        self.spec = spec
        self.layer_names: list[str] = []
        channels = spec.in_channels
        for name, layer in spec.named_layers():
            if isinstance(layer, nin.NiNBlock):
                module: nn.Module = nin_block(channels, layer)
                channels = layer.out_channels
            elif isinstance(layer, nin.MaxPool):
                module = MaxPool(layer)
            elif isinstance(layer, nin.AvgPool):
                module = AvgPool(layer)
            elif isinstance(layer, nin.Dropout):
                module = nn.Dropout(layer.rate)
            elif isinstance(layer, nin.GlobalAvgPool):
                module = GlobalAvgPool()
            else:
                module = Head(math.prod(nin.shapes.head_input_shape(spec)), layer.out_features)
            setattr(self, name, module)
            self.layer_names.append(name)

    def outputs(self, x: mx.array) -> Iterator[tuple[str, mx.array]]:
        """Every layer's output by canonical name (a block's convolutions as
        ``block{b}.conv{c}``), lazily: nothing is computed until an output is evaluated."""
        for name in self.layer_names:
            module = self[name]
            if isinstance(module, MlpConv):
                convs = list(module.outputs(x))
                yield from ((f"{name}.{conv}", out) for conv, out in zip(module.names, convs, strict=True))
                x = convs[-1]
            else:
                x = module(x)
                yield name, x

    def __call__(self, x: mx.array) -> mx.array:
        *_, (_, logits) = self.outputs(x)
        return logits
