"""The d2l book's PyTorch NiN, as a reader of the book writes it — the peer we compare with.

Source: Zhang et al., Dive into Deep Learning, §8.3 (d2l.ai/chapter_convolutional-modern/nin.html),
PyTorch tab, transcribed.  The book subclasses ``d2l.Classifier`` from ``d2l.torch``, which
imports torchvision; torchvision cannot load beside this CPU build of torch, so here the same
network is an ``nn.Module`` with the book's layers, lazy convolutions and ``d2l.init_cnn``
(Xavier-uniform weights).  Not used by the suite's own models.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def nin_block(out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())  # fmt: skip


def init_cnn(module):
    if type(module) == nn.Linear or type(module) == nn.Conv2d:  # noqa: E721 (the book's code)
        nn.init.xavier_uniform_(module.weight)


class NiN(nn.Module):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten())  # fmt: skip

    def forward(self, X):
        return self.net(X)


def build(num_classes: int = 10, in_channels: int = 1, input_size: int = 224) -> NiN:
    """The book's model with its lazy layers materialised by one forward pass (as the book's
    ``apply_init`` does), then ``init_cnn`` applied."""
    model = NiN(num_classes=num_classes)
    model(torch.zeros(1, in_channels, input_size, input_size))
    model.net.apply(init_cnn)
    return model


def param_count(model: NiN) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_outputs(model: NiN, x: np.ndarray) -> list[np.ndarray]:
    """Each top-level layer's output (NCHW), as the book's ``layer_summary`` walks them."""
    model.eval()
    outputs, h = [], torch.from_numpy(x)
    with torch.no_grad():
        for layer in model.net:
            h = layer(h)
            outputs.append(h.numpy())
    return outputs


def forward(model: NiN, x: np.ndarray) -> np.ndarray:
    """Evaluation-mode logits, as the book's ``predict`` computes them."""
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def make_train_step(model: NiN, lr: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0):
    """The book's training step (``d2l.Trainer.fit_epoch``): cross-entropy, ``zero_grad``,
    ``backward``, ``torch.optim.SGD.step``; the book's plain SGD unless ``momentum`` or
    ``weight_decay`` is given (the recipe's SGD, for an equal-work comparison)."""
    optim = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        model.train()
        loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
        optim.zero_grad()
        loss.backward()
        optim.step()
        return float(loss)

    return step
