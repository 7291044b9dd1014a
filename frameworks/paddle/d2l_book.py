"""The d2l book's PaddlePaddle NiN, as a reader of the book writes it — the peer we compare with.

Source: 阿斯顿·张 (Aston Zhang) et al., 动手学深度学习 (Dive into Deep Learning, Chinese
edition), §7.3 "网络中的网络（NiN）", the ``paddle`` tab (zh.d2l.ai/chapter_convolutional-modern/nin.html;
d2l-ai/d2l-zh, chapter_convolutional-modern/nin.md), transcribed: ``nin_block`` and ``net``
as the chapter writes them, and the training step of the book's ``d2l.train_ch6``
(d2l-ai/d2l-zh, d2l/paddle.py): ``paddle.optimizer.SGD``, ``nn.CrossEntropyLoss``,
``clear_grad``, ``backward``, ``step``.  The book's ``init_weights`` in ``train_ch6`` calls
``nn.initializer.XavierUniform(m.weight)``, which builds an initializer (with the weight as its
``fan_in``) and never applies it, so the book's network trains from Paddle's default
initialisation; ``build`` keeps that.  The ``d2l`` package here has no ``paddle`` module, so the
book's code is written out below.  Not used by the suite's own models.
"""

from __future__ import annotations

import math

import numpy as np
import paddle
import paddle.nn as nn


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2D(in_channels, out_channels, kernel_size, strides, padding),
        nn.ReLU(),
        nn.Conv2D(out_channels, out_channels, kernel_size=1),
        nn.ReLU(),
        nn.Conv2D(out_channels, out_channels, kernel_size=1),
        nn.ReLU())  # fmt: skip


def net(in_channels=1, num_classes=10):
    """The chapter's ``net`` (its literals 1 and 10 are ``in_channels`` and ``num_classes``)."""
    return nn.Sequential(
        nin_block(in_channels, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2D(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2D(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2D(3, stride=2), nn.Dropout(0.5),
        # 标签类别数是10
        nin_block(384, num_classes, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2D((1, 1)),
        # 将四维的输出转成二维的输出，其形状为(批量大小,10)
        nn.Flatten())  # fmt: skip


def build(num_classes: int = 10, in_channels: int = 1, input_size: int = 224) -> nn.Sequential:
    """The book's model; Paddle creates every parameter with its layer (``input_size`` only
    matters to frameworks whose layers infer their input width)."""
    return net(in_channels, num_classes)


def param_count(model: nn.Sequential) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())


def layer_outputs(model: nn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Each top-level layer's output (NCHW), as the book's shape walk (``for layer in net``)
    produces them."""
    model.eval()
    outputs, h = [], paddle.to_tensor(x)
    with paddle.no_grad():
        for layer in model:
            h = layer(h)
            outputs.append(h.numpy())
    return outputs


def forward(model: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """Evaluation-mode logits, as the book's ``evaluate_accuracy_gpu`` computes them."""
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def make_train_step(model: nn.Sequential, lr: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0):
    """The book's training step (``d2l.train_ch6``): ``clear_grad``, cross-entropy,
    ``backward``, ``step`` of ``paddle.optimizer.SGD``; the book's plain SGD unless
    ``momentum`` or ``weight_decay`` is given (then ``paddle.optimizer.Momentum``, the recipe's
    SGD, for an equal-work comparison)."""
    if momentum or weight_decay:
        optimizer = paddle.optimizer.Momentum(
            learning_rate=lr, momentum=momentum, parameters=model.parameters(), weight_decay=weight_decay
        )
    else:
        optimizer = paddle.optimizer.SGD(learning_rate=lr, parameters=model.parameters())
    loss = nn.CrossEntropyLoss()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        model.train()
        optimizer.clear_grad()
        X, y = paddle.to_tensor(x), paddle.to_tensor(y)
        y_hat = model(X)
        l = loss(y_hat, y)  # noqa: E741 (the book's name)
        l.backward()
        optimizer.step()
        return float(l)

    return step
