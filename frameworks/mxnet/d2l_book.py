"""The d2l book's MXNet NiN, as a reader of the book writes it — the peer we compare with.

Source: Zhang et al., Dive into Deep Learning, §8.3 (d2l.ai/chapter_convolutional-modern/nin.html),
MXNet tab, transcribed onto ``d2l.mxnet.Classifier`` from the ``d2l`` package.
The book's notebooks call ``npx.set_np()``, a process-wide switch to MXNet's NumPy arrays;
it is left out here so this module cannot change the suite's Gluon backend in the same
process — the layers are the same either way.  Not used by the suite's own models.
"""

from __future__ import annotations

import numpy as np
from d2l import mxnet as d2l  # nin.frameworks.mxnet (this package) has made MXNet importable
from mxnet import init, nd
from mxnet.gluon import nn


def nin_block(num_channels, kernel_size, strides, padding):
    blk = nn.Sequential()
    blk.add(nn.Conv2D(num_channels, kernel_size, strides, padding, activation='relu'),
            nn.Conv2D(num_channels, kernel_size=1, activation='relu'),
            nn.Conv2D(num_channels, kernel_size=1, activation='relu'))  # fmt: skip
    return blk


class NiN(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential()
        self.net.add(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.GlobalAvgPool2D(),
            nn.Flatten(),
        )
        self.net.initialize(init.Xavier())  # fmt: skip


def build(num_classes: int = 10, in_channels: int = 1, input_size: int = 224) -> NiN:
    """The book's model; Gluon's deferred initialisation completes on the first forward."""
    model = NiN(num_classes=num_classes)
    model(nd.zeros((1, in_channels, input_size, input_size)))
    return model


def param_count(model: NiN) -> int:
    return int(sum(np.prod(p.shape) for p in model.collect_params().values()))


def layer_outputs(model: NiN, x: np.ndarray) -> list[np.ndarray]:
    outputs, h = [], nd.array(x)
    for layer in model.net:
        h = layer(h)
        outputs.append(h.asnumpy())
    return outputs


def forward(model: NiN, x: np.ndarray) -> np.ndarray:
    return model(nd.array(x)).asnumpy()


def make_train_step(model: NiN, lr: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0):
    """The book's training step (``d2l.Trainer.fit_epoch``, MXNet tab): ``autograd.record``,
    ``loss.backward()``, ``gluon.Trainer.step`` — no hybridization, as in the chapter; the
    book's plain SGD unless ``momentum`` or ``weight_decay`` is given (Gluon's ``sgd`` with
    them: the recipe's SGD, for an equal-work comparison)."""
    from mxnet import autograd, gluon

    options = {"learning_rate": lr, "momentum": momentum, "wd": weight_decay}
    trainer = gluon.Trainer(model.collect_params(), "sgd", options)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        xs, ys = nd.array(x), nd.array(y)
        with autograd.record():
            loss = loss_fn(model(xs), ys).mean()
        loss.backward()
        trainer.step(1)
        return float(loss.asscalar())

    return step
