"""Network in Network in PaddlePaddle, channels-first (NCHW / NCDHW).

Source: Lin, Chen, Yan, "Network In Network", ICLR 2014, arXiv:1312.4400; the code follows
the PaddlePaddle version of Zhang et al., Dive into Deep Learning, §7.3 "网络中的网络（NiN）"
of the Chinese edition (zh.d2l.ai/chapter_convolutional-modern/nin.html: ``nin_block`` and
``net``; ``d2l_book.py`` holds the book's code itself), generalised to any ``nin.NiNSpec``,
2-D or 3-D.

The sublayers of ``NiN`` carry the canonical layer names (``block0``, ``pool0``,
``dropout0``, ``gap``, ``head``) and each block names its convolutions ``conv0``, ``conv1``,
..., so ``named_parameters()`` gives the canonical weight names (``block0.conv0.weight``).
Convolution kernels are in the canonical layout (out, in, kh, kw); ``nn.Linear`` keeps its
weight as (in, out), which the adapter transposes.  The output of canonical layer
``block{b}.conv{c}`` (after ReLU) is that of ``block{b}.relu{c}``.

Pooling is Paddle's own: ``nn.MaxPool2D`` pads with −inf, and ``nn.AvgPool2D(...,
exclusive=False)`` divides by the window clipped at input + padding (Caffe's rule), in floor
and ceil mode.  One rule differs: in ceil mode Paddle keeps a last window that starts in
the right padding or past it, which Caffe and the spec drop (Paddle's output length is
``ceil((n + 2p − k) / s) + 1`` without the correction).  ``CeilPool`` crops that window off;
every other output and every gradient is Paddle's, checked against ``nin.reference`` by
tests/test_pool_geometry.py (kernel 1–5, stride 1–4, padding 0–k//2, 2-D and 3-D).

    >>> import nin
    >>> from nin.frameworks.paddle import NiN
    >>> net = NiN(nin.get_spec("nin_cifar10"))
"""

from __future__ import annotations

import math

import paddle
from paddle import nn

import nin

_CONV = {2: nn.Conv2D, 3: nn.Conv3D}
_MAX_POOL = {2: nn.MaxPool2D, 3: nn.MaxPool3D}
_AVG_POOL = {2: nn.AvgPool2D, 3: nn.AvgPool3D}
_GLOBAL_AVG_POOL = {2: nn.AdaptiveAvgPool2D, 3: nn.AdaptiveAvgPool3D}


def nin_block(in_channels: int, block_spec: nin.NiNBlock) -> nn.Sequential:
    """An mlpconv block on ``in_channels`` input channels: the spatial convolution, then the
    1×1 ones, each followed by ReLU (2-D or 3-D, as the block's convolutions are)."""
    layers: list[tuple[str, nn.Layer]] = []
    for c, cv in enumerate(block_spec.convs):
        layers.append((f"conv{c}", _CONV[cv.ndim](in_channels, cv.out_channels, cv.kernel, cv.stride, cv.padding)))
        layers.append((f"relu{c}", nn.ReLU()))
        in_channels = cv.out_channels
    return nn.Sequential(*layers)


def _pool(pool: nin.MaxPool | nin.AvgPool, ndim: int) -> nn.Layer:
    """Paddle's pool for ``pool`` (``CeilPool`` around it in ceil mode)."""
    if isinstance(pool, nin.MaxPool):
        native = _MAX_POOL[ndim](pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
    else:
        native = _AVG_POOL[ndim](pool.kernel, pool.stride, pool.padding, ceil_mode=pool.ceil_mode, exclusive=False)
    return CeilPool(native, pool) if pool.ceil_mode else native


class CeilPool(nn.Layer):
    """A ceil-mode pool of Paddle's with Caffe's last-window rule: its output cropped to
    ``nin.shapes.window_out`` along every spatial axis, which removes exactly the last window
    Paddle adds when that window would start in the right padding (module docstring)."""

    def __init__(self, native: nn.Layer, pool: nin.MaxPool | nin.AvgPool):
        super().__init__()
        self.pool, self.pool_spec = native, pool

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = _ceil_out(x.shape[2:], self.pool_spec)
        y = self.pool(x)
        if list(y.shape[2:]) == out:
            return y
        return y[(slice(None), slice(None), *(slice(0, m) for m in out))]


@paddle.jit.not_to_static  # plain Python on the static sizes, also when paddle.jit.save traces the model
def _ceil_out(size: list[int], pool: nin.MaxPool | nin.AvgPool) -> list[int]:
    """The spec's output size of a ceil-mode ``pool`` on an input of spatial ``size``."""
    return [
        nin.shapes.window_out(n, k, s, p, ceil_mode=True)
        for n, k, s, p in zip(size, pool.kernel, pool.stride, pool.padding, strict=True)
    ]


class NiN(nn.Layer):
    """A Network in Network built from a spec: mlpconv blocks, pools and dropout, then global
    average pooling (one score per channel of the last block) or a fully connected head on
    the NCHW-flattened features."""

    def __init__(self, spec: nin.NiNSpec):
        super().__init__()
        self.spec = spec
        channels = spec.in_channels
        for name, layer in spec.named_layers():
            if isinstance(layer, nin.NiNBlock):
                sublayer = nin_block(channels, layer)
                channels = layer.out_channels
            elif isinstance(layer, nin.MaxPool | nin.AvgPool):
                sublayer = _pool(layer, spec.ndim)
            elif isinstance(layer, nin.Dropout):
                sublayer = nn.Dropout(layer.rate)  # "upscale_in_train", as the other frameworks
            elif isinstance(layer, nin.GlobalAvgPool):
                sublayer = nn.Sequential(_GLOBAL_AVG_POOL[spec.ndim](1), nn.Flatten())
            else:
                # the head is the last layer; it reads its input flattened in (C, H, W) order
                self.add_sublayer("flatten", nn.Flatten())
                sublayer = nn.Linear(math.prod(nin.shapes.head_input_shape(spec)), layer.out_features)
            self.add_sublayer(name, sublayer)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for layer in self.children():
            x = layer(x)
        return x
