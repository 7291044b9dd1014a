"""Network in Network in MXNet Gluon, channels-first (NCHW / NCDHW).

Source: Lin, Chen, Yan, "Network In Network", ICLR 2014, arXiv:1312.4400; the code follows the
MXNet tab of Zhang et al., Dive into Deep Learning, §8.3 "Network in Network"
(d2l.ai/chapter_convolutional-modern/nin.html: ``nin_block`` and ``NiN``), generalised to any
``nin.NiNSpec``, 2-D or 3-D.  Every layer gets its input width (``in_channels``,
``in_units``), so parameters exist as soon as the model is initialised: no deferred shapes.

The children of ``NiN`` are attributes named for the canonical layers (``net.block0``,
``net.pool0``, ``net.dropout0``, ``net.gap``, ``net.head``), and every Gluon parameter is named
after its canonical weight: ``block0.conv1.weight`` is ``net.prefix + "block0_conv1_weight"``,
in the canonical layout.

Pooling (``Pool``) follows ``nin.spec`` exactly.  MXNet's ``pooling_convention='full'`` is
not used for ceil mode: it keeps a last window that starts in the right padding whenever
stride + padding > kernel, and its oneDNN backward of average pooling divides windows that
hang past input + padding by the whole kernel (the forward clips them), so gradients disagree
with its own forward.  ``Pool`` pads explicitly instead, checked against ``nin.reference``,
forward and backward, by tests/test_pool_geometry.py: every kernel 1–5, stride 1–4 and
padding 0–2 (≤ k//2), floor and ceil mode, 2-D and 3-D, for every runtime.

    >>> import nin
    >>> from nin.frameworks.mxnet import NiN
    >>> net = NiN(nin.get_spec("nin_cifar10"))
    >>> net.initialize()
"""

from __future__ import annotations

import math

from mxnet.gluon import nn

import nin

_CONV = {2: nn.Conv2D, 3: nn.Conv3D}
_GLOBAL_AVG_POOL = {2: nn.GlobalAvgPool2D, 3: nn.GlobalAvgPool3D}


def nin_block(in_channels: int, block_spec: nin.NiNBlock, **kwargs) -> nn.HybridSequential:
    """An mlpconv block on ``in_channels`` input channels: the spatial convolution, then the
    1×1 ones, each with ReLU (2-D or 3-D, as the block's convolutions are).  Keyword arguments
    (``prefix``, ``params``) go to the ``HybridSequential``."""
    block = nn.HybridSequential(**kwargs)
    with block.name_scope():
        for c, cv in enumerate(block_spec.convs):
            conv = _CONV[cv.ndim](
                cv.out_channels,
                cv.kernel,
                cv.stride,
                cv.padding,
                in_channels=in_channels,
                activation="relu",
                prefix=f"conv{c}_",
            )
            block.add(conv)
            in_channels = cv.out_channels
    return block


class Pool(nn.HybridBlock):
    """Max or average pooling by ``nin.spec``'s rules, on MXNet's ``Pooling`` operator.

    Floor mode is MXNet's 'valid' convention as it stands: padding is −inf for max, and
    ``count_include_pad=True`` divides by the whole window, which in floor mode never hangs
    past input + padding.  Ceil mode is floor mode over an input extended on the high side by
    ``min(s - 1, k - p - 1)`` cells: room for Caffe's last window, and never for one that
    starts beyond the input and its left padding.  The extension never counts: max pooling
    fills it with −inf; average pooling sums over the zero-padded, extended input and divides
    by the window clipped at input + padding, counted by sum-pooling a mask of ones.
    Explicit padding is shape-agnostic, so a hybridized model accepts any input size."""

    def __init__(self, pool_spec: nin.MaxPool | nin.AvgPool, **kwargs):
        super().__init__(**kwargs)
        self.pool_spec = pool_spec
        self._type = "max" if isinstance(pool_spec, nin.MaxPool) else "avg"
        windows = zip(pool_spec.kernel, pool_spec.stride, pool_spec.padding, strict=True)
        self._extend = tuple(min(s - 1, k - p - 1) if pool_spec.ceil_mode else 0 for k, s, p in windows)

    def __repr__(self) -> str:
        spec = self.pool_spec
        return (
            f"{type(self).__name__}({self._type}, size={spec.kernel}, stride={spec.stride}, "
            f"padding={spec.padding}, ceil_mode={spec.ceil_mode})"
        )

    def _pooling(self, F, x, pool_type: str, pad: tuple[int, ...]):
        spec = self.pool_spec
        return F.Pooling(
            x, kernel=spec.kernel, stride=spec.stride, pad=pad, pool_type=pool_type, count_include_pad=True
        )

    def hybrid_forward(self, F, x):
        padding = self.pool_spec.padding
        if not self.pool_spec.ceil_mode:
            return self._pooling(F, x, self._type, padding)
        none = (0,) * len(padding)
        if self._type == "max":
            return self._pooling(F, _pad(F, x, none, self._extend, float("-inf")), "max", padding)
        high = tuple(p + e for p, e in zip(padding, self._extend, strict=True))
        total = self._pooling(F, _pad(F, x, padding, high, 0.0), "sum", none)
        first = F.slice_axis(F.slice_axis(x, axis=0, begin=0, end=1), axis=1, begin=0, end=1)
        inside = _pad(F, _pad(F, F.ones_like(first), padding, padding, 1.0), none, self._extend, 0.0)
        return F.broadcast_div(total, self._pooling(F, inside, "sum", none))


def _pad(F, x, low: tuple[int, ...], high: tuple[int, ...], value: float):
    """``x`` padded with ``value`` on its spatial axes (``low`` before, ``high`` after)."""
    if not any(low) and not any(high):
        return x
    widths = (0, 0, 0, 0, *(w for pair in zip(low, high, strict=True) for w in pair))
    return F.pad(x, mode="constant", pad_width=widths, constant_value=value)


class NiN(nn.HybridBlock):
    """A Network in Network built from a spec: mlpconv blocks, pools and dropout, then global
    average pooling (one score per channel of the last block) or a fully connected head on
    the NCHW-flattened features."""

    def __init__(self, spec: nin.NiNSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        channels = spec.in_channels
        with self.name_scope():
            for name, layer in spec.named_layers():
                if isinstance(layer, nin.NiNBlock):
                    setattr(self, name, nin_block(channels, layer, prefix=f"{name}_"))
                    channels = layer.out_channels
                    continue
                if isinstance(layer, nin.MaxPool | nin.AvgPool):
                    child = Pool(layer)
                elif isinstance(layer, nin.Dropout):
                    child = nn.Dropout(layer.rate)
                elif isinstance(layer, nin.GlobalAvgPool):
                    child = nn.HybridSequential(prefix=f"{name}_")
                    child.add(_GLOBAL_AVG_POOL[spec.ndim](), nn.Flatten())
                else:
                    features = math.prod(nin.shapes.head_input_shape(spec))
                    child = nn.Dense(layer.out_features, in_units=features, prefix=f"{name}_")
                setattr(self, name, child)

    def hybrid_forward(self, F, x):
        for name, _ in self.spec.named_layers():
            x = getattr(self, name)(x)
        return x
