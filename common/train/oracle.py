"""The NumPy oracle of training: one SGD update in float64 (``sgd_reference``), the oracle of
every backend's optimizer, and ``NumpyTrainer``, the ``Trainer`` contract on it (slow,
framework-free and exact; the "numpy" backend of ``nin train``).

The update is PyTorch's ``torch.optim.SGD`` (coupled L2 weight decay, no dampening, no
Nesterov): ``b ← μ·b + (g + λ·w)``, ``w ← w − lr·b``; no label smoothing: the loss is the
plain mean softmax cross-entropy that ``nin.reference`` computes.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ..spec import Dropout, NiNSpec
from ..weights import Weights, init_weights, validate_weights
from .recipe import Recipe, derive_seed, spec_for


def zero_momentum(weights: Weights) -> Weights:
    return {name: np.zeros_like(w, dtype=np.float32) for name, w in weights.items()}


def sgd_reference(
    spec: NiNSpec,
    weights: Weights,
    momentum_buffers: Weights,
    x: np.ndarray,
    y: np.ndarray,
    lr: float,
    recipe: Recipe,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[Weights, Weights, float]:
    """One SGD step, the oracle of every backend's: ``b ← μ·b + (g + λ·w)``, ``w ← w − lr·b``
    for every canonical tensor (biases too), with ``g`` the float64 gradient of the mean
    cross-entropy from ``nin.reference.loss_and_grads`` (dropout as given by ``masks``).

    Returns (new weights, new buffers, loss before the update); both states come back in
    float32, as a framework keeps them."""
    loss, grads = reference.loss_and_grads(spec, weights, x, y, masks)
    new_weights, new_buffers = {}, {}
    for name, g in grads.items():
        w = np.asarray(weights[name], dtype=np.float64)
        b = recipe.momentum * np.asarray(momentum_buffers[name], dtype=np.float64) + (g + recipe.weight_decay * w)
        new_weights[name] = (w - lr * b).astype(np.float32)
        new_buffers[name] = b.astype(np.float32)
    return new_weights, new_buffers, loss


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class NumpyTrainer:
    """The ``Trainer`` contract on ``sgd_reference``: slow, framework-free and exact.  It is the
    oracle of the cross-backend K-step test and lets the loop be tested without a framework.

    Dropout masks come from ``nin.reference.dropout_masks`` seeded by
    ``derive_seed(recipe.seed, epoch, step)``."""

    def __init__(self, spec: NiNSpec, recipe: Recipe):
        self.spec = spec_for(recipe, spec)
        self.recipe = recipe
        self.weights = init_weights(self.spec, recipe.seed, recipe.init)
        self.momentum = zero_momentum(self.weights)
        self._dropout = any(isinstance(layer, Dropout) and layer.rate > 0 for layer in self.spec.layers)
        self._epoch, self._step = 0, 0

    def begin_epoch(self, epoch: int) -> None:
        self._epoch, self._step = epoch, 0

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        masks = None
        if self._dropout:
            seed = derive_seed(self.recipe.seed, self._epoch, self._step)
            masks = reference.dropout_masks(self.spec, x.shape, seed)
        self._step += 1
        logits, _ = reference.forward(self.spec, self.weights, x, masks)
        self.weights, self.momentum, loss = sgd_reference(
            self.spec, self.weights, self.momentum, x, y, lr, self.recipe, masks
        )
        return loss, int((logits.argmax(axis=1) == y).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        logits, _ = reference.forward(self.spec, self.weights, x)
        log_p = _log_softmax(logits)
        return float(-log_p[np.arange(len(y)), y].sum()), int((logits.argmax(axis=1) == y).sum())

    def export_state(self) -> dict[str, Weights]:
        return {"weights": dict(self.weights), "momentum": dict(self.momentum)}

    def load_state(self, state: dict[str, Weights]) -> None:
        self.weights = validate_weights(self.spec, state["weights"])
        self.momentum = validate_weights(self.spec, state["momentum"])
