"""Network in Network in Flax (``flax.linen``), channels-last (NHWC / NDHWC).

Source: Lin, Chen, Yan, "Network In Network", ICLR 2014, arXiv:1312.4400; the code follows the
JAX tab of Zhang et al., Dive into Deep Learning §8.3 (d2l.ai/chapter_convolutional-modern/nin.html)
with two drifts of that version fixed: padding is given as explicit ``(low, high)`` pairs, never
``'SAME'``, and every pool is built from the spec (d2l's JAX code hard-codes 5×5 pooling).

Pooling follows ``nin.spec`` exactly: max pooling pads with −inf, average pooling sums over
zero padding and divides by the window clipped at input + padding (Caffe's rule, PyTorch's
``count_include_pad=True``), and ceil mode adds high-side padding so the last window, which
starts inside the input or its left padding, fits.  ``flax.linen.avg_pool`` divides by the
full window, which is wrong for ceil-mode windows, so average pooling is a ``reduce_window``
sum divided by a precomputed divisor.

    net = NiN(nin.get_spec("nin_cifar10"))
    variables = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    logits = net.apply(variables, x_nhwc, train=True, rngs={"dropout": key})

The fully connected head (``nin.Linear``) flattens the native (H, W, C) activations, as any
Flax model does; ``adapter.py`` permutes the canonical (C, H, W)-ordered weight rows to match.

``dtype`` is the computation dtype of every convolution, the head and so the pools between
them (``jnp.bfloat16`` for mixed precision: Flax's ``dtype`` with ``param_dtype`` float32, so
the parameters stay float32); ``None`` computes in the inputs' and parameters' float32.

A 1×1 convolution is ``nn.Dense`` over the channel axis — the paper's small MLP sliding over
the pixels — and any other one ``nn.Conv``; the layout is chosen once, at the input
(channels-last), with no transposes inside.  Three choices are made for XLA:CPU's sake, not
the network's, each computing the same function and gradient as the plain version
(docs/benchmarks.md, "JAX's step, broken down"):

* ``nn.Dense`` multiplies the pixels as the rows of one matrix (``dense_dot_general``);
* every bias is the ``ConvReLU`` module's own parameter, added by ``add_bias``, whose
  gradient is a matrix-vector product rather than a reduction that XLA fuses into the
  optimizer's update;
* max pooling has its own gradient rule (``max_pool``, a ``jax.custom_vjp``), because XLA:CPU
  runs JAX's select-and-scatter serially; it makes max pooling reverse-mode only
  (``jax.grad``, not ``jax.jvp``), as ``add_bias`` does.

Parameters keep Flax's own names inside canonically named blocks: ``block1.conv2.weight`` is
``params["block1"]["ConvReLU_2"]["Dense_0"]["kernel"]`` (``"Conv_0"`` for a convolution that
is not 1×1), ``block1.conv2.bias`` is ``params["block1"]["ConvReLU_2"]["bias"]`` and
``head.weight`` is ``params["Dense_0"]["kernel"]``.  Every layer's output is sown into the
``"intermediates"`` collection under its canonical name (``["block1"]["conv2"]``,
``["pool0"]``, ``["dropout0"]``, ``["gap"]``, ``["head"]``); a sown name may not repeat a
submodule's, which is why the submodules keep Flax's names.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import DTypeLike

import nin
from nin.shapes import avg_pool_divisor, pool_padding


def pointwise(conv: nin.Conv) -> bool:
    """Whether ``conv`` is a 1×1 (1×1×1), stride-1, unpadded convolution: a matrix product over
    the channel axis at every pixel, which ``ConvReLU`` runs as ``nn.Dense``."""
    return all(k == 1 for k in conv.kernel) and all(s == 1 for s in conv.stride) and not any(conv.padding)


def dense_dot_general(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: lax.DotDimensionNumbers,
    precision: lax.PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """``lax.dot_general`` for ``nn.Dense``, with the pixels flattened into the rows of one
    matrix product: on (N, H, W, C) inputs XLA:CPU copies the output gradient into a transposed
    layout for the kernel gradient, and on an (N·H·W, C) matrix it does not."""
    (contracting, batch) = dimension_numbers
    if contracting != ((lhs.ndim - 1,), (0,)) or batch != ((), ()) or rhs.ndim != 2:
        return lax.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type=preferred_element_type)
    rows = lhs.reshape(-1, lhs.shape[-1])
    y = jnp.dot(rows, rhs, precision=precision, preferred_element_type=preferred_element_type)
    return y.reshape(*lhs.shape[:-1], rhs.shape[-1])


@jax.custom_vjp
def add_bias(z: jax.Array, bias: jax.Array) -> jax.Array:
    """``z + bias`` over the last axis.  Its bias gradient is a matrix-vector product,
    ``1ᵀ·dz`` over all pixels, accumulated in float32 at full precision (no TF32 on a GPU):
    XLA:CPU fuses the plain reduction into the optimizer's update as a loop that reads the
    gradient column by column, which cost 6–8 % of ``nin_d2l``'s training step."""
    return z + bias.astype(z.dtype)


def _add_bias_forward(z: jax.Array, bias: jax.Array) -> tuple[jax.Array, jax.Array]:
    return add_bias(z, bias), bias


def _add_bias_backward(bias: jax.Array, dz: jax.Array) -> tuple[jax.Array, jax.Array]:
    rows = dz.reshape(-1, dz.shape[-1])
    ones = jnp.ones(rows.shape[0], rows.dtype)
    db = jnp.dot(ones, rows, precision=lax.Precision.HIGHEST, preferred_element_type=jnp.float32)
    return dz, db.astype(bias.dtype)


add_bias.defvjp(_add_bias_forward, _add_bias_backward)


class ConvReLU(nn.Module):
    """One convolution of a block and its ReLU.  A 1×1 convolution is ``nn.Dense`` over the
    channel axis — the paper's small MLP sliding over the pixels — and any other one
    ``nn.Conv``; both without their own bias, which this module holds (``add_bias``)."""

    conv: nin.Conv
    precision: lax.Precision | None = None
    dtype: DTypeLike | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cv, options = self.conv, {"precision": self.precision, "dtype": self.dtype, "param_dtype": jnp.float32}
        if pointwise(cv):
            linear = nn.Dense(cv.out_channels, use_bias=False, dot_general=dense_dot_general, **options)
        else:
            padding = [(p, p) for p in cv.padding]
            linear = nn.Conv(cv.out_channels, cv.kernel, cv.stride, padding=padding, use_bias=False, **options)
        bias = self.param("bias", nn.initializers.zeros_init(), (cv.out_channels,), jnp.float32)
        return nn.relu(add_bias(linear(x), bias))


class MlpConv(nn.Module):
    """An mlpconv block: each convolution of ``block_spec`` followed by ReLU (``conv0`` is the
    spatial one, the rest are the paper's 1×1 "cccp" layers)."""

    block_spec: nin.NiNBlock
    precision: lax.Precision | None = None
    dtype: DTypeLike | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for c, cv in enumerate(self.block_spec.convs):
            x = ConvReLU(cv, precision=self.precision, dtype=self.dtype)(x)
            self.sow("intermediates", f"conv{c}", x)
        return x


def nin_block(
    block_spec: nin.NiNBlock,
    *,
    precision: lax.Precision | None = None,
    dtype: DTypeLike | None = None,
    name: str | None = None,
) -> MlpConv:
    """The Flax module of one spec block (``nin.nin_block(96, 11, 4, 0)`` describes one).
    Flax infers the input width from the first input, so it takes no ``in_channels``."""
    return MlpConv(block_spec, precision=precision, dtype=dtype, name=name)


def _phases(x: jax.Array, pool: nin.MaxPool) -> tuple[jax.Array, list[int], list[int], list[tuple[int, int]]]:
    """The −inf-padded input viewed in stride phases, ``(N, M1, s1, M2, s2, ..., C)`` (``M``
    cells of ``s`` per dimension), with the output size, the cells and the padding: kernel
    offset ``o`` reads phase ``o % s`` from cell ``o // s`` on, so every window offset is one
    plain slice (strided slices, interior pads and ``reduce_window`` are slow on XLA:CPU)."""
    batch, *size, channels = x.shape
    pads = pool_padding(tuple(size), pool)
    out = [(n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(size, pads, pool.kernel, pool.stride, strict=True)]
    cells = [
        max(-(-(n + lo + hi) // s), o + (k - 1) // s)
        for n, (lo, hi), s, o, k in zip(size, pads, pool.stride, out, pool.kernel, strict=True)
    ]
    widths = [(lo, m * s - n - lo) for m, s, n, (lo, _) in zip(cells, pool.stride, size, pads, strict=True)]
    xp = jnp.pad(x, [(0, 0), *widths, (0, 0)], constant_values=-jnp.inf)
    return xp.reshape(batch, *itertools.chain(*zip(cells, pool.stride, strict=True)), channels), out, cells, pads


def _offsets(pool: nin.MaxPool, out: list[int]) -> Iterator[tuple[list[int], tuple[int, ...], tuple]]:
    """For each kernel offset, in window order: its cell shift, its phase and the index of
    its slice of the phase view."""
    for offset in itertools.product(*(range(k) for k in pool.kernel)):
        shift = [o // s for o, s in zip(offset, pool.stride, strict=True)]
        phase = tuple(o % s for o, s in zip(offset, pool.stride, strict=True))
        window = itertools.chain(*((slice(q, q + n), r) for q, n, r in zip(shift, out, phase, strict=True)))
        yield shift, phase, (slice(None), *window)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, pool: nin.MaxPool) -> jax.Array:
    """Max pooling with −inf padding (``flax.linen.max_pool`` pads with its −inf init value).
    Its gradient goes to the first maximum of each window, as in Caffe and PyTorch.  (A forward
    from the slices of ``_phases`` runs 2.4× faster alone on jaxlib 0.10.2, but made the
    training step 10–15 % slower: docs/benchmarks.md, "JAX's step, broken down".)"""
    return nn.max_pool(x, pool.kernel, pool.stride, padding=pool_padding(x.shape[1:-1], pool))


def _max_pool_forward(x: jax.Array, pool: nin.MaxPool) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    y = max_pool(x, pool)
    return y, (x, y)


def _max_pool_backward(pool: nin.MaxPool, saved: tuple[jax.Array, jax.Array], dy: jax.Array) -> tuple[jax.Array]:
    """Route each window's gradient to its first maximum with the slices of ``_phases``: each
    offset's gradient is a pad of ``dy`` within its phase, and the phases are interleaved back
    at the end."""
    x, y = saved
    batch, *size, channels = x.shape
    xp, out, cells, pads = _phases(x, pool)
    phase_grads: dict[tuple[int, ...], jax.Array] = {}
    unclaimed = jnp.ones(y.shape, bool)
    for shift, phase, index in _offsets(pool, out):
        first = unclaimed & (xp[index] == y)
        unclaimed &= ~first
        grad = jnp.pad(
            jnp.where(first, dy, 0.0),
            [(0, 0), *((q, m - n - q) for q, m, n in zip(shift, cells, out, strict=True)), (0, 0)],
        )
        phase_grads[phase] = phase_grads[phase] + grad if phase in phase_grads else grad
    stride = pool.stride
    zeros = jnp.zeros((batch, *cells, channels), x.dtype)
    grads = jnp.stack([phase_grads.get(phase, zeros) for phase in itertools.product(*(range(s) for s in stride))])
    # (s1, ..., sd, N, M1, ..., Md, C) → (N, M1, s1, ..., Md, sd, C) → (N, M1·s1, ..., C)
    nd = len(stride)
    grads = grads.reshape(*stride, batch, *cells, channels)
    grads = grads.transpose(nd, *itertools.chain(*((nd + 1 + d, d) for d in range(nd))), 2 * nd + 1)
    grads = grads.reshape(batch, *(m * s for m, s in zip(cells, stride, strict=True)), channels)
    return (grads[(slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(pads, size, strict=True)))],)


max_pool.defvjp(_max_pool_forward, _max_pool_backward)


def avg_pool(x: jax.Array, pool: nin.AvgPool) -> jax.Array:
    """Average pooling: a sum over zero-padded windows divided by the clipped window size, in
    the dtype of ``x``."""
    size = x.shape[1:-1]
    padding = ((0, 0), *pool_padding(size, pool), (0, 0))
    summed = lax.reduce_window(x, 0.0, lax.add, (1, *pool.kernel, 1), (1, *pool.stride, 1), padding)
    return summed / avg_pool_divisor(size, pool)[..., None].astype(x.dtype)


class NiN(nn.Module):
    """A whole Network in Network, built from a ``nin.NiNSpec``, on channels-last input.

    ``train=True`` applies dropout and needs a ``"dropout"`` rng.  ``precision`` is passed to
    every convolution and the head (``lax.Precision.HIGHEST`` keeps GPUs off TF32), and so is
    ``dtype``, the computation dtype (``jnp.bfloat16``: bfloat16 logits from float32 parameters)."""

    spec: nin.NiNSpec
    precision: lax.Precision | None = None
    dtype: DTypeLike | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for name, layer in self.spec.named_layers():
            if isinstance(layer, nin.NiNBlock):
                x = nin_block(layer, precision=self.precision, dtype=self.dtype, name=name)(x)
                continue
            if isinstance(layer, nin.MaxPool):
                x = max_pool(x, layer)
            elif isinstance(layer, nin.AvgPool):
                x = avg_pool(x, layer)
            elif isinstance(layer, nin.Dropout):
                x = nn.Dropout(layer.rate, deterministic=not train)(x)
            elif isinstance(layer, nin.GlobalAvgPool):
                x = jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))
            else:
                dense = nn.Dense(
                    layer.out_features, precision=self.precision, dtype=self.dtype, param_dtype=jnp.float32
                )
                x = dense(x.reshape(x.shape[0], -1))
            self.sow("intermediates", name, x)
        return x
