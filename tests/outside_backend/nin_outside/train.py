"""``Trainer``: the oracle's SGD (``nin.train.NumpyTrainer``) on a built model's weights."""

from __future__ import annotations

import numpy as np

from nin.train import NumpyTrainer, Recipe, zero_momentum

from .model import NiN


class Trainer(NumpyTrainer):
    """The ``Trainer`` contract: ``nin.train.sgd_reference`` steps, written back to ``model``."""

    def __init__(self, model: NiN, recipe: Recipe):
        super().__init__(model.spec, recipe)
        self.model = model
        self.weights = dict(model.weights)
        self.momentum = zero_momentum(self.weights)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        loss, correct = super().step(x, y, lr)
        self.model.weights = {k: v.astype(np.float32) for k, v in self.weights.items()}
        return loss, correct

    def load_state(self, state) -> None:
        super().load_state(state)
        self.model.weights = dict(self.weights)
