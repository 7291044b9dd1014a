"""Network in Network in Keras 3, channels-last (NHWC / NDHWC), built from a ``nin.NiNSpec``.

Sources: Lin, Chen, Yan, "Network In Network", ICLR 2014 (arXiv:1312.4400); Zhang et al.,
Dive into Deep Learning, §8.3 "Network in Network" (d2l.ai/chapter_convolutional-modern/nin.html),
whose TensorFlow ``nin_block`` / ``net`` this follows, with two drifts fixed:

* convolutions pad explicitly (``ZeroPadding`` + ``padding="valid"``) by the spec's amount;
  d2l's TensorFlow code uses ``padding="same"``, which matches the other frameworks' padding
  only for stride-1 odd kernels padded by (k − 1) / 2;
* pooling follows the rules written down in ``nin.spec`` (−inf padding for max, the clipped
  ``count_include_pad`` divisor for average, Caffe's ceil mode).  Keras has no padding amount
  and no ceil mode for pooling, so ``MaxPooling`` and ``AveragePooling`` below implement them.

    from nin.frameworks.tensorflow import NiN
    net = NiN(nin.get_spec("nin_d2l"))        # built: its weights exist already
    logits = net(images_nhwc)                 # (N, 10)

Weights are Keras' own layout: conv kernels (kh, kw, in, out) (HWIO), and a fully connected
head's ``Dense`` kernel (in, out) whose rows follow the native (H, W, C) flatten order.  The
canonical format flattens in (C, H, W) order; ``nin.frameworks.tensorflow.adapter`` permutes
the head's rows when it converts, so the model itself flattens the usual Keras way, with no
transpose at run time.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

import nin

_CONV = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}
_ZERO_PADDING = {2: keras.layers.ZeroPadding2D, 3: keras.layers.ZeroPadding3D}
_GLOBAL_AVERAGE = {2: keras.layers.GlobalAveragePooling2D, 3: keras.layers.GlobalAveragePooling3D}


def nin_block(block_spec: nin.NiNBlock, name: str | None = None) -> keras.Sequential:
    """An mlpconv block: the spatial convolution, then the 1×1 ones, each followed by ReLU.
    Keras infers the input width when the block is first built, so it takes no ``in_channels``.

    Layers are named ``conv{c}`` (and ``pad{c}`` for the explicit zero padding before a padded
    convolution), so ``block.get_layer("conv0").kernel`` is the spatial kernel."""
    layers = []
    for c, conv in enumerate(block_spec.convs):
        if any(conv.padding):
            layers.append(_ZERO_PADDING[conv.ndim](conv.padding, data_format="channels_last", name=f"pad{c}"))
        layers.append(
            _CONV[conv.ndim](
                conv.out_channels,
                conv.kernel,
                strides=conv.stride,
                padding="valid",
                data_format="channels_last",
                activation="relu",
                name=f"conv{c}",
            )
        )
    return keras.Sequential(layers, name=name)


class _WindowPooling(keras.layers.Layer):
    """Shared geometry of ``MaxPooling`` and ``AveragePooling`` (channels-last, 2-D or 3-D).

    ``padding`` cells go on both sides of each spatial dimension; in ceil mode the high side
    gets more, enough for the last window, which starts inside the input or its low padding
    (``nin.shapes.window_out`` gives the output size)."""

    def __init__(self, pool_size, strides, padding, ceil_mode: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides, self.padding = tuple(pool_size), tuple(strides), tuple(padding)
        self.ceil_mode = ceil_mode
        self._pool = self._SPEC(self.pool_size, self.strides, self.padding, ceil_mode)

    def _windows(self, size: tuple[int, ...]) -> tuple[tuple[int, ...], list[tuple[int, int]]]:
        """Output size and the (low, high) padding per spatial dimension of an input ``size``."""
        if any(n is None for n in size):
            raise ValueError(f"{self.name} needs a static spatial size to place its windows; got {size}")
        windows = zip(size, self.pool_size, self.strides, self.padding, strict=True)
        out = tuple(nin.shapes.window_out(n, k, s, p, self.ceil_mode) for n, k, s, p in windows)
        return out, list(nin.shapes.pool_padding(size, self._pool))

    def _pool_input(self, inputs, value: float):
        """The input padded with ``value`` so that a 'valid' pool gives every window."""
        out, pads = self._windows(tuple(inputs.shape[1:-1]))
        if any(low or high for low, high in pads):
            inputs = ops.pad(inputs, [(0, 0), *pads, (0, 0)], constant_values=value)
        return inputs, out

    def compute_output_shape(self, input_shape):
        out, _ = self._windows(tuple(input_shape[1:-1]))
        return (input_shape[0], *out, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
        }


class MaxPooling(_WindowPooling):
    """Max pooling over explicitly padded windows; padding is −inf, so it never wins.

    Keras' ``MaxPooling2D`` knows only 'valid' and 'same' and rounds down; this takes the
    spec's padding amount and Caffe's ceil mode."""

    _SPEC = nin.MaxPool

    def call(self, inputs):
        padded, _ = self._pool_input(inputs, -math.inf)
        return ops.max_pool(padded, self.pool_size, self.strides, padding="valid", data_format="channels_last")


class AveragePooling(_WindowPooling):
    """Average pooling with Caffe's divisor (PyTorch's ``count_include_pad=True``).

    Padding cells count as zeros, and each window is divided by its size clipped at
    input + padding on the high side: a window starting at ``start = o·s − p`` covers
    ``min(start + k, n + p) − start`` cells per dimension.  Ceil-mode windows that hang past
    ``n + p`` therefore divide by fewer cells.  Computed as a 'valid' average over the
    zero-padded input (which divides by the full window) times a constant correction."""

    _SPEC = nin.AvgPool

    def call(self, inputs):
        padded, out = self._pool_input(inputs, 0.0)
        mean = ops.average_pool(padded, self.pool_size, self.strides, padding="valid", data_format="channels_last")
        correction = self._divisor_correction(tuple(inputs.shape[1:-1]), out)
        return mean if correction is None else mean * correction

    def _divisor_correction(self, size, out) -> np.ndarray | None:
        """``window / clipped divisor`` shaped (1, *out, 1), or None where it is 1 everywhere."""
        correction = math.prod(self.pool_size) / nin.shapes.avg_pool_divisor(size, self._pool)
        if np.all(correction == 1.0):
            return None
        return correction.reshape(1, *out, 1).astype(np.float32)


class NiN(keras.Model):
    """A Network in Network built from a ``nin.NiNSpec``; its weights exist on construction.

    Takes channels-last batches ``(N, H, W, C)`` (``(N, D, H, W, C)`` in 3-D) and returns
    class scores ``(N, num_classes)``.  Its sub-layers carry the canonical layer names
    (``block0``, ``pool0``, ``dropout0``, ``gap``, ``head``): ``net.get_layer("block1")``."""

    def __init__(self, spec: nin.NiNSpec, **kwargs):
        super().__init__(name=spec.name, **kwargs)
        self.spec = spec
        self.stages = [_stage(layer, name, spec.ndim) for name, layer in spec.named_layers()]
        self.build((None, *spec.input_size, spec.in_channels))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for stage in self.stages:
            stage.build(shape)
            shape = stage.compute_output_shape(shape)

    def call(self, inputs, training=False):
        x = inputs
        for stage in self.stages:
            x = stage(x, training=training)
        return x

    def forward_intermediates(self, inputs, training=False) -> dict:
        """Every canonical layer's output, channels-last, in network order: one entry per
        convolution (``block{b}.conv{c}``, after its ReLU) and one per other layer."""
        outputs = {}
        x = inputs
        for (name, layer), stage in zip(self.spec.named_layers(), self.stages, strict=True):
            if isinstance(layer, nin.NiNBlock):
                for sub in stage.layers:
                    x = sub(x)
                    if isinstance(sub, keras.layers.Conv2D | keras.layers.Conv3D):
                        outputs[f"{name}.{sub.name}"] = x
            else:
                x = stage(x, training=training)
                outputs[name] = x
        return outputs


def _stage(layer, name: str, ndim: int) -> keras.layers.Layer:
    """The Keras layer of one top-level spec layer, named canonically."""
    if isinstance(layer, nin.NiNBlock):
        return nin_block(layer, name=name)
    if isinstance(layer, nin.MaxPool):
        return MaxPooling(layer.kernel, layer.stride, layer.padding, layer.ceil_mode, name=name)
    if isinstance(layer, nin.AvgPool):
        return AveragePooling(layer.kernel, layer.stride, layer.padding, layer.ceil_mode, name=name)
    if isinstance(layer, nin.Dropout):
        return keras.layers.Dropout(layer.rate, name=name)
    if isinstance(layer, nin.GlobalAvgPool):
        return _GLOBAL_AVERAGE[ndim](data_format="channels_last", name=name)
    if isinstance(layer, nin.Linear):
        flatten = keras.layers.Flatten(data_format="channels_last", name="flatten")
        return keras.Sequential([flatten, keras.layers.Dense(layer.out_features, name="dense")], name=name)
    raise TypeError(f"no Keras layer for {layer!r}")
