"""Training for the JAX/Flax backend (frameworks/README.md, "Training"): an ``optax`` chain
inside one ``jax.jit``-compiled step.

    trainer = nin.train.get_trainer("jax", "nin_mnist", nin.train.Recipe())
    trainer.begin_epoch(0)
    loss, correct = trainer.step(x, y, lr=0.05)

The update is the contract's, PyTorch's ``torch.optim.SGD``: ``b ← μ·b + (g + λ·w)``,
``w ← w − lr·b``.  ``coupled_sgd`` below writes it as the optax chain
``add_decayed_weights(λ)`` (``g + λ·w``: coupled L2 on every tensor, biases too) →
``trace(μ)`` (``b ← μ·b + u``) → ``scale_by_learning_rate(lr)`` (``−lr·b``, which
``optax.apply_updates`` adds to ``w``).  ``optax.trace`` keeps PyTorch's buffer ``b`` itself
(unlike Keras' or MXNet's ``−lr·b``), so the update is exact for any schedule and the momentum
exports and loads without conversion: a checkpoint is lossless and a resumed run continues
bit for bit.  (``optax.sgd(lr, momentum)`` is the same chain without the weight decay; an
``add_decayed_weights`` after it would be decoupled, outside the momentum.)

The step is one compiled function of (parameters, optimizer state, batch, rate, dropout key),
static in the module and the recipe's μ and λ, so trainers of equal specs and recipes share
the compiled code.  The rate is a traced scalar from which the chain is built inside the
trace, so a new rate every step does not recompile; the parameter and optimizer-state
buffers are donated and updated in place.  A model built with ``precision="bf16"`` computes
in bfloat16 (its module's ``dtype``) and takes the loss of float32 logits; the parameters,
gradients and optimizer state stay float32.  The trained parameters live in the ``FlaxNiN``'s
``params``, so ``adapter.forward`` and ``adapter.export_state`` see them.

Dropout masks come from the ``FlaxNiN``'s key, which ``begin_epoch`` sets to
``jax.random.key(derive_seed(recipe.seed, epoch))`` and every step splits, as
``adapter.forward(..., train=True)`` does, so an epoch draws the same masks whether or not the
run was resumed before it.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax

import nin
from nin.deprecated import renamed
from nin.train import Recipe, check_momentum, derive_seed

from .adapter import FlaxNiN, apply_logits, from_native, load_state, native_input, native_labels, to_native
from .adapter import export_state as export_weights
from .model import NiN


def coupled_sgd(learning_rate, momentum: float, weight_decay: float) -> optax.GradientTransformation:
    """SGD with momentum and coupled weight decay in PyTorch's convention:
    ``b ← μ·b + (g + λ·w)``, ``w ← w − lr·b``.  No dampening, no Nesterov.  The state holds
    the buffer ``b`` of every parameter as ``TraceState.trace`` (zeros at first; at μ = 0 it
    holds the last ``g + λ·w``, as ``nin.train.sgd_reference`` does); it does not depend on
    the rate, which may be a traced scalar."""
    check_momentum(momentum)
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.trace(decay=momentum),
        optax.scale_by_learning_rate(learning_rate),
    )


class Trainer:
    """The ``nin.train.Trainer`` contract on a ``FlaxNiN`` built by ``adapter.build``.

    ``step`` and ``evaluate`` are ``jax.jit`` functions compiled once per (module, recipe,
    batch shape); the learning rate is an argument, so a new rate every step does not
    recompile."""

    def __init__(self, model: FlaxNiN, recipe: Recipe):
        self.model, self.recipe, self.spec = model, recipe, model.spec
        self._opt_state = coupled_sgd(recipe.lr, recipe.momentum, recipe.weight_decay).init(model.params)

    def begin_epoch(self, epoch: int) -> None:
        """Set the model's dropout key from ``(recipe.seed, epoch)``."""
        self.model.key = jax.device_put(jax.random.key(derive_seed(self.recipe.seed, epoch)), self.model.device)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One SGD step in training mode; (mean loss before it, correct predictions)."""
        x, labels = self._batch(x, y)
        self.model.key, dropout_key = jax.random.split(self.model.key)
        self.model.params, self._opt_state, loss, correct = _train_step(
            self.model.module,
            self.recipe.momentum,
            self.recipe.weight_decay,
            self.model.params,
            self._opt_state,
            x,
            labels,
            np.float32(lr),
            dropout_key,
        )
        loss, correct = jax.device_get((loss, correct))
        return float(loss), int(correct)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode; (summed loss, correct predictions)."""
        x, labels = self._batch(x, y)
        loss_sum, correct = jax.device_get(_evaluate(self.model.module, self.model.params, x, labels))
        return float(loss_sum), int(correct)

    def export_state(self) -> dict[str, nin.weights.Weights]:
        """Canonical weights and momentum buffers (PyTorch's ``b``, canonical layout)."""
        momentum = from_native(self.model, optax.tree_utils.tree_get(self._opt_state, "trace"))
        return {"weights": export_weights(self.model), "momentum": momentum}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        """The inverse of ``export_state`` (both dicts validated against the spec)."""
        momentum = nin.validate_weights(self.spec, state["momentum"])
        load_state(self.model, state["weights"])
        trace = to_native(self.model, momentum)
        self._opt_state = optax.tree_utils.tree_set(self._opt_state, trace=trace)

    def _batch(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """Checked NCHW images and int32 labels on the model's device (channels-last happens
        inside the compiled functions, as in the adapter)."""
        x = native_input(self.model, x)
        return x, native_labels(self.model, y, len(x))


@functools.partial(
    jax.jit, static_argnames=("module", "momentum", "weight_decay"), donate_argnames=("params", "opt_state")
)
def _train_step(module: NiN, momentum: float, weight_decay: float, params, opt_state, x, labels, lr, key):
    """Mean cross-entropy in training mode, its gradient, one ``coupled_sgd`` update at rate
    ``lr``; returns the new parameters and optimizer state, the loss before the update and
    the number of correct predictions."""

    def loss_fn(params):
        logits = apply_logits(module, params, x, key, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = coupled_sgd(lr, momentum, weight_decay).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, _correct(logits, labels)


@functools.partial(jax.jit, static_argnames=("module",))
def _evaluate(module: NiN, params, x, labels):
    logits = apply_logits(module, params, x, None, train=False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum(), _correct(logits, labels)


def _correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return (logits.argmax(axis=1) == labels).sum()


# the old name, after the framework whose convention the update follows rather than what it does
__getattr__ = renamed(__name__, {"torch_sgd": "coupled_sgd"}, globals())
