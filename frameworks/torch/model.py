"""Network in Network in PyTorch.

Source: Lin, Chen, Yan, "Network In Network", ICLR 2014, arXiv:1312.4400; the code follows
Zhang et al., Dive into Deep Learning, §8.3 "Network in Network" (``nin_block`` and ``NiN``),
generalised to any ``nin.NiNSpec``, 2-D or 3-D.

The children of ``NiN`` carry the canonical layer names (``block0``, ``pool0``, ``dropout0``,
``gap``, ``head``) and each block names its convolutions ``conv0``, ``conv1``, ..., so the
``state_dict`` keys are the canonical weight names (``block0.conv0.weight``) in the canonical
layout. The output of canonical layer ``block{b}.conv{c}`` (after ReLU) is that of
``block{b}.relu{c}``.

    >>> import nin
    >>> from nin.frameworks.torch import NiN
    >>> net = NiN(nin.get_spec("nin_cifar10"))
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

import nin

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}
_GLOBAL_AVG_POOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def nin_block(in_channels: int, block_spec: nin.NiNBlock) -> nn.Sequential:
    """An mlpconv block on ``in_channels`` input channels: the spatial convolution, then the
    1×1 ones, each followed by ReLU (2-D or 3-D, as the block's convolutions are)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for c, cv in enumerate(block_spec.convs):
        layers[f"conv{c}"] = _CONV[cv.ndim](in_channels, cv.out_channels, cv.kernel, cv.stride, cv.padding)
        layers[f"relu{c}"] = nn.ReLU(inplace=True)  # no second activation-sized tensor per layer
        in_channels = cv.out_channels
    return nn.Sequential(layers)


def _pool(pool: nin.MaxPool | nin.AvgPool, ndim: int) -> nn.Module:
    """PyTorch's pools follow ``nin.spec`` as they stand: −inf padding for max, Caffe's ceil
    mode, and ``count_include_pad=True`` is the clipped divisor rule."""
    if isinstance(pool, nin.MaxPool):
        return _MAX_POOL[ndim](pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
    if ndim == 3 and any(pool.padding):
        return PaddedAvgPool3d(pool)
    return _AVG_POOL[ndim](pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode, count_include_pad=True)


class PaddedAvgPool3d(nn.Module):
    """3-D average pooling with padding, for inputs smaller than the kernel: ``avg_pool3d``
    rejects them even when the padding makes the window fit ("input image (T: 1 H: 1 W: 1)
    smaller than kernel size", torch 2.13; ``avg_pool2d`` accepts them).  So it zero-pads
    explicitly and pools without padding: the divisor is then the window clipped at the padded
    end, ``n + p``, the spec's rule.  One rule differs: on the padded tensor, ceil mode keeps a
    last window that starts in the right padding, which the spec drops; the output is cropped
    to the spec's size, which removes exactly that window."""

    def __init__(self, pool: nin.AvgPool):
        super().__init__()
        self.pool = pool
        self.pads = tuple(p for p in reversed(pool.padding) for _ in range(2))  # F.pad: last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pool
        out = [
            nin.shapes.window_out(n, k, s, q, p.ceil_mode)
            for n, k, s, q in zip(x.shape[2:], p.kernel, p.stride, p.padding, strict=True)
        ]
        y = nn.functional.avg_pool3d(nn.functional.pad(x, self.pads), p.kernel, p.stride, 0, p.ceil_mode, True)
        return y[:, :, : out[0], : out[1], : out[2]]


class NiN(nn.Module):
    """A Network in Network built from a spec: mlpconv blocks, pools and dropout, then global
    average pooling (one score per channel of the last block) or a fully connected head.

    ``precision`` is the arithmetic the adapter and ``Trainer`` run the model in ("float32",
    or "bf16": ``torch.autocast`` to bfloat16 with the parameters kept float32); the module
    itself is plain float32 either way.  ``adapter.build`` sets it."""

    precision: str = "float32"

    def __init__(self, spec: nin.NiNSpec):
        super().__init__()
        self.spec = spec
        channels = spec.in_channels
        for name, layer in spec.named_layers():
            if isinstance(layer, nin.NiNBlock):
                module = nin_block(channels, layer)
                channels = layer.out_channels
            elif isinstance(layer, nin.MaxPool | nin.AvgPool):
                module = _pool(layer, spec.ndim)
            elif isinstance(layer, nin.Dropout):
                module = nn.Dropout(layer.rate)
            elif isinstance(layer, nin.GlobalAvgPool):
                module = nn.Sequential(_GLOBAL_AVG_POOL[spec.ndim](1), nn.Flatten())
            else:
                # the head is the last layer; it reads its input flattened in (C, H, W) order
                self.add_module("flatten", nn.Flatten())
                module = nn.Linear(math.prod(nin.shapes.head_input_shape(spec)), layer.out_features)
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x
