"""Training NiN with Paddle's own tools: ``paddle.optimizer.Momentum`` in dynamic-graph mode.

``Momentum(momentum=μ, weight_decay=λ)`` is the suite's update as written (frameworks/README.md):
a float ``weight_decay`` is Paddle's ``L2Decay``, which the momentum operator folds into the
gradient, ``v ← μ·v + (g + λ·w)``, and the step is ``w ← w − lr·v`` (no dampening, no
Nesterov).  Paddle's velocity is the contract's buffer ``b``, so it is exported as it is:
``optimizer.state_dict()`` holds it as ``"{parameter name}_velocity_0"``.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

import nin
from nin.train import Recipe, derive_seed

from .adapter import (
    compute_scope,
    export_state,
    from_native,
    load_state,
    native_input,
    native_labels,
    native_parameters,
    to_native,
)
from .model import NiN


class Trainer:
    """The ``nin.train.Trainer`` contract for a Paddle ``NiN``."""

    def __init__(self, model: NiN, recipe: Recipe):
        self.model, self.spec, self.recipe = model, model.spec, recipe
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=recipe.lr,
            momentum=recipe.momentum,
            parameters=list(native_parameters(model).values()),
            weight_decay=recipe.weight_decay,
        )

    def _velocity_keys(self) -> dict[str, str]:
        """Canonical name → the key of its velocity in ``optimizer.state_dict()``."""
        return {name: f"{param.name}_velocity_0" for name, param in native_parameters(self.model).items()}

    def begin_epoch(self, epoch: int) -> None:
        """Dropout draws from Paddle's global generator: reseed it per epoch so a resumed run
        draws the same masks as one that never stopped."""
        paddle.seed(derive_seed(self.recipe.seed, epoch))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One SGD step in training mode: (mean loss before the update, correct predictions)."""
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, len(inputs))
        self.optimizer.set_lr(lr)
        self.model.train()
        with compute_scope(self.model):
            logits = self.model(inputs)
            loss = F.cross_entropy(logits, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad(set_to_zero=False)
        self.model.eval()
        return float(loss), int((logits.argmax(axis=1) == labels).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode: (summed loss, correct predictions)."""
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, len(inputs))
        self.model.eval()
        with paddle.no_grad(), compute_scope(self.model):
            logits = self.model(inputs)
            loss = F.cross_entropy(logits, labels, reduction="sum")
        return float(loss), int((logits.argmax(axis=1) == labels).sum())

    def export_state(self) -> dict[str, nin.weights.Weights]:
        saved = self.optimizer.state_dict()  # the velocities exist from the first step (or load_state) on
        params = native_parameters(self.model)
        buffers = {
            name: saved[key] if key in saved else paddle.zeros_like(params[name])
            for name, key in self._velocity_keys().items()
        }
        return {"weights": export_state(self.model), "momentum": from_native(self.model, buffers)}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        load_state(self.model, state["weights"])
        momentum = to_native(self.model, nin.validate_weights(self.spec, state["momentum"]))
        self.optimizer.set_state_dict({key: momentum[name] for name, key in self._velocity_keys().items()})
