"""Training for the TensorFlow/Keras 3 backend (frameworks/README.md, "Training"): a Keras
optimizer driven by ``tf.GradientTape`` inside a ``tf.function`` step.

    trainer = nin.train.get_trainer("tensorflow", "nin_mnist", nin.train.Recipe())
    trainer.begin_epoch(0)
    loss, correct = trainer.step(x, y, lr=0.05)

The update is the contract's, PyTorch's ``torch.optim.SGD``: ``b ← μ·b + (g + λ·w)``,
``w ← w − lr·b``.  Keras' ``SGD`` keeps ``v = −lr·b`` instead (``v ← μ·v − lr·g``,
``w ← w + v``), which is the same update only while the rate stays constant: at a new rate its
old velocity still carries the old one.  Rather than rescale ``v`` by ``lr_new / lr_old``
before every step and convert it (``b = −v / lr``) on export, ``CoupledSGD`` below is a Keras
optimizer whose ``update_step`` is PyTorch's, so its momentum slots hold ``b`` itself: the
update is exact for any schedule, and a checkpoint (export, then load) is lossless, so a
resumed run continues bit for bit.  Weight decay is coupled L2 on every tensor, biases too:
``λ·w`` is added to each gradient before the optimizer sees it (Keras' own ``weight_decay``
is decoupled, ``w ← w − lr·λ·w`` outside the momentum, so it is not used).

Dropout masks come from each Keras ``Dropout`` layer's ``SeedGenerator`` (a stateless
generator whose state is ``[seed, counter]``); ``begin_epoch`` sets the k-th dropout layer's
state to ``[derive_seed(recipe.seed, epoch, k), 0]``, so an epoch draws the same masks
whether or not the run was resumed before it.
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import nin
from nin.deprecated import renamed
from nin.train import Recipe, check_momentum, derive_seed

from .adapter import compute_scope, from_native, load_state, native_input, native_labels, native_parameters, to_native
from .adapter import export_state as export_weights
from .model import NiN


class CoupledSGD(keras.optimizers.Optimizer):
    """SGD with momentum in PyTorch's convention: ``b ← μ·b + g``, ``w ← w − lr·b``, with a
    momentum slot ``b`` for every variable (also at μ = 0, where it holds the last gradient,
    as ``nin.train.sgd_reference`` does).  No dampening, no Nesterov; weight decay, if any,
    is the caller's, added to ``g``."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, name: str = "coupled_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = check_momentum(momentum)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, ops.add(ops.multiply(buffer, self.momentum), ops.cast(gradient, variable.dtype)))
        self.assign_sub(variable, ops.multiply(buffer, ops.cast(learning_rate, variable.dtype)))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


class Trainer:
    """The ``nin.train.Trainer`` contract on a Keras ``NiN`` built by ``adapter.build``.

    ``step`` and ``evaluate`` are ``tf.function`` graphs traced once per input size (any batch
    size); the learning rate is a graph argument, so a new rate every step does not retrace."""

    def __init__(self, model: NiN, recipe: Recipe):
        self.model, self.recipe, self.spec = model, recipe, model.spec
        self._variables = native_parameters(model)
        with compute_scope(model):
            self.optimizer = CoupledSGD(learning_rate=recipe.lr, momentum=recipe.momentum)
            self.optimizer.build(self._variables)
        self._seed_generators = [
            model.get_layer(name).seed_generator
            for name, layer in self.spec.named_layers()
            if isinstance(layer, nin.Dropout) and layer.rate > 0
        ]
        self._graphs: dict[tuple[str, tuple[int, ...]], tf.types.experimental.PolymorphicFunction] = {}

    def begin_epoch(self, epoch: int) -> None:
        """Reseed every dropout layer's generator from ``(recipe.seed, epoch)``."""
        for k, generator in enumerate(self._seed_generators):
            generator.state.assign(np.array([derive_seed(self.recipe.seed, epoch, k), 0], np.int64))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One SGD step in training mode; (mean loss before it, correct predictions)."""
        loss, correct = self._run("step", x, y, np.float32(lr))
        return float(loss), int(correct)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode; (summed loss, correct predictions)."""
        loss_sum, correct = self._run("evaluate", x, y)
        return float(loss_sum), int(correct)

    def export_state(self) -> dict[str, nin.weights.Weights]:
        """Canonical weights and momentum buffers (PyTorch's ``b``, canonical layout)."""
        momentum = from_native(self.model, [buffer.numpy() for buffer in self.optimizer.momentums])
        return {"weights": export_weights(self.model), "momentum": momentum}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        """The inverse of ``export_state`` (both dicts validated against the spec)."""
        momentum = nin.validate_weights(self.spec, state["momentum"])
        load_state(self.model, state["weights"])
        for buffer, value in zip(self.optimizer.momentums, to_native(self.model, momentum), strict=True):
            buffer.assign(value)

    def _run(self, what: str, x: np.ndarray, y: np.ndarray, *args):
        x = native_input(self.model, x)
        labels = native_labels(self.model, y, len(x))
        key = (what, x.shape[1:])
        with compute_scope(self.model):
            if key not in self._graphs:
                self._graphs[key] = self._trace(what, x.shape[1:])
            return self._graphs[key](tf.constant(x), tf.constant(labels), *(tf.constant(a) for a in args))

    def _trace(self, what: str, sample_shape: tuple[int, ...]):
        x = tf.TensorSpec((None, *sample_shape), tf.float32, name="x")
        labels = tf.TensorSpec((None,), tf.int64, name="labels")
        if what == "step":
            fn = partial(_train_step, self.model, self.optimizer, self._variables, self.recipe.weight_decay)
            signature = [x, labels, tf.TensorSpec((), tf.float32, name="lr")]
        else:
            fn, signature = partial(_evaluate, self.model), [x, labels]
        # Partials of module functions, as in the adapter: TensorFlow keys its retracing
        # warning by code object, so bound methods of several trainers would share one count.
        return tf.function(fn, input_signature=signature, jit_compile=False)


def _train_step(model: NiN, optimizer: CoupledSGD, variables: list, weight_decay: float, x, labels, lr):
    """Mean cross-entropy in training mode, its gradient plus ``λ·w``, one optimizer step at
    rate ``lr``; returns the loss before the step and the number of correct predictions."""
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, variables)
    optimizer.learning_rate.assign(lr)
    optimizer.apply([g + weight_decay * w.value for g, w in zip(grads, variables, strict=True)], variables)
    return loss, _correct(logits, labels)


def _evaluate(model: NiN, x, labels):
    logits = model(x, training=False)
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)), _correct(logits, labels)


def _correct(logits, labels):
    return tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == labels, tf.int32))


# the old name, after the framework whose convention the update follows rather than what it does
__getattr__ = renamed(__name__, {"TorchSGD": "CoupledSGD"}, globals())
