"""Training NiN with MLX's own tools: ``mlx.optimizers.SGD`` driven by ``nn.value_and_grad``
over the model's parameters, the whole step one ``mx.compile``-d function.

    trainer = nin.train.get_trainer("mlx", "nin_mnist", nin.train.Recipe())
    trainer.begin_epoch(0)
    loss, correct = trainer.step(x, y, lr=0.05)

``optim.SGD(learning_rate, momentum=μ, weight_decay=λ)`` (no dampening, no Nesterov) is the
suite's update as written (frameworks/README.md): ``g ← g + λ·w``, ``v ← μ·v + g``,
``w ← w − lr·v``, its state ``v`` PyTorch's buffer ``b`` itself, so the momentum exports and
loads without conversion.  (At μ = 0 MLX's buffer stays zero and exports so, as PyTorch's does.)

The step follows MLX's own pattern for compiled training (``mx.compile`` with
``inputs=state, outputs=state``, ``state = [model.state, optimizer.state, mx.random.state]``):
the parameters, the optimizer's buffers and its learning rate, and the dropout generator are
the compiled function's implicit inputs and outputs, so a new rate every step
(``optimizer.learning_rate = lr`` writes into ``optimizer.state``) does not recompile; each
batch shape traces once.  The step returns the loss and the correct count as arrays and is
evaluated once, with the new parameters, by a single ``mx.eval``.

Dropout draws from MLX's global generator (``mx.random.state``), which ``begin_epoch`` seeds
with ``mx.random.seed(derive_seed(recipe.seed, epoch))``: process-wide, as MXNet's is.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_unflatten

import nin
from nin.train import Recipe, check_momentum, derive_seed

from .adapter import (
    export_state,
    from_native,
    load_state,
    logits,
    native_input,
    native_labels,
    native_parameters,
    to_native,
    value_and_grads,
)
from .model import NiN


class Trainer:
    """The ``nin.train.Trainer`` contract for an MLX ``NiN``."""

    def __init__(self, model: NiN, recipe: Recipe):
        self.model, self.spec, self.recipe = model, model.spec, recipe
        self.optimizer = optim.SGD(
            learning_rate=recipe.lr, momentum=check_momentum(recipe.momentum), weight_decay=recipe.weight_decay
        )
        self.optimizer.init(native_parameters(model))
        self._step = _train_step(model, self.optimizer)
        self._evaluate = _evaluate(model)

    def begin_epoch(self, epoch: int) -> None:
        """Seed MLX's generator (process-wide) from ``(recipe.seed, epoch)``, so a resumed run
        draws the same dropout masks as one that never stopped."""
        mx.random.seed(derive_seed(self.recipe.seed, epoch))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One SGD step in training mode: (mean loss before the update, correct predictions)."""
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, inputs.shape[0])
        self.optimizer.learning_rate = lr
        n = inputs.shape[0]
        loss, out = self._step(inputs, labels, mx.ones(n), mx.array(1 / n))
        correct = correct_count(out, labels)
        mx.eval(loss, correct, self.model.state, self.optimizer.state)
        return loss.item(), int(correct.item())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode: (summed loss, correct predictions)."""
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, inputs.shape[0])
        loss_sum, correct = self._evaluate(inputs, labels)
        mx.eval(loss_sum, correct)
        return loss_sum.item(), int(correct.item())

    def export_state(self) -> dict[str, nin.weights.Weights]:
        """Canonical weights and momentum buffers (PyTorch's ``b``: MLX's ``v``)."""
        buffers = [(name, self._slot(name)["v"]) for name in nin.weight_shapes(self.spec)]
        return {"weights": export_state(self.model), "momentum": from_native(self.model, tree_unflatten(buffers))}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        """The inverse of ``export_state`` (both dicts validated against the spec)."""
        momentum = to_native(self.model, nin.validate_weights(self.spec, state["momentum"]))
        load_state(self.model, state["weights"])
        for name in nin.weight_shapes(self.spec):
            self._slot(name)["v"] = _lookup(momentum, name)
        mx.eval(self.optimizer.state)

    def _slot(self, name: str) -> dict:
        """The optimizer's state of canonical parameter ``name`` (``{"v": buffer}``: ``SGD.init_single``
        makes one for every parameter, at μ = 0 too, where it stays zero)."""
        return _lookup(self.optimizer.state, name)


def _lookup(tree: dict, name: str):
    """``tree["block0"]["conv1"]["weight"]`` for ``name`` "block0.conv1.weight"."""
    for key in name.split("."):
        tree = tree[key]
    return tree


def _train_step(
    model: NiN, optimizer: optim.Optimizer, reduce_grads: Callable[[dict], dict] = lambda grads: grads
) -> Callable[..., tuple[mx.array, mx.array]]:
    """The compiled training step of ``model`` and ``optimizer``, ``step(x, labels, weight,
    scale)``: ``adapter.weighted_loss`` in training mode and its gradient
    (``adapter.value_and_grads``: the batch split over MLX's CPU streams), passed through
    ``reduce_grads`` (the workers' all-reduce in ``distributed.py``), then one
    ``optimizer.update``; returns the loss before the update and the logits (MLX's
    compiled-training pattern, see the module docstring)."""
    state = [model.state, optimizer.state, mx.random.state]

    def step(x: mx.array, labels: mx.array, weight: mx.array, scale: mx.array) -> tuple[mx.array, mx.array]:
        model.train()
        loss, out, grads = value_and_grads(model, x, labels, weight, scale)
        optimizer.update(model, reduce_grads(grads))
        model.eval()
        return loss, out

    return mx.compile(step, inputs=state, outputs=state)


def _evaluate(model: NiN) -> Callable[[mx.array, mx.array], tuple[mx.array, mx.array]]:
    """The compiled evaluation of ``model``: (summed loss, correct predictions)."""

    def evaluate(x: mx.array, labels: mx.array) -> tuple[mx.array, mx.array]:
        model.eval()
        out = logits(model, x)
        return nn.losses.cross_entropy(out, labels, reduction="sum"), correct_count(out, labels)

    return mx.compile(evaluate, inputs=[model.state], outputs=[model.state])


def correct_count(logits: mx.array, labels: mx.array, weight: mx.array | None = None) -> mx.array:
    """The number of rows whose largest logit is their label's (each counted with its ``weight``)."""
    right = mx.argmax(logits, axis=1) == labels
    return (right if weight is None else right * weight).sum()
