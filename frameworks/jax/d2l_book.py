"""The d2l book's JAX NiN, as a reader of the book writes it — the peer we compare with.

Source: Zhang et al., Dive into Deep Learning, §8.3 (d2l.ai/chapter_convolutional-modern/nin.html),
JAX tab, transcribed onto ``d2l.jax.Classifier`` from the ``d2l`` package.  Note the book's
hard-coded ``nn.avg_pool(x, (5, 5))`` as "global" pooling: right only for 224×224 inputs.
Not used by the suite's own models.
"""

from __future__ import annotations

import jax
import numpy as np
from d2l import jax as d2l
from flax import linen as nn


def nin_block(out_channels, kernel_size, strides, padding):
    return nn.Sequential([
        nn.Conv(out_channels, kernel_size, strides, padding),
        nn.relu,
        nn.Conv(out_channels, kernel_size=(1, 1)), nn.relu,
        nn.Conv(out_channels, kernel_size=(1, 1)), nn.relu])  # fmt: skip


class NiN(d2l.Classifier):
    lr: float = 0.1
    num_classes = 10
    training: bool = True

    def setup(self):
        self.net = nn.Sequential([
            nin_block(96, kernel_size=(11, 11), strides=(4, 4), padding=(0, 0)),
            lambda x: nn.max_pool(x, (3, 3), strides=(2, 2)),
            nin_block(256, kernel_size=(5, 5), strides=(1, 1), padding=(2, 2)),
            lambda x: nn.max_pool(x, (3, 3), strides=(2, 2)),
            nin_block(384, kernel_size=(3, 3), strides=(1, 1), padding=(1, 1)),
            lambda x: nn.max_pool(x, (3, 3), strides=(2, 2)),
            nn.Dropout(0.5, deterministic=not self.training),
            nin_block(self.num_classes, kernel_size=(3, 3), strides=1, padding=(1, 1)),
            lambda x: nn.avg_pool(x, (5, 5)),  # global avg pooling
            lambda x: x.reshape((x.shape[0], -1))  # flatten
        ])  # fmt: skip


def build(num_classes: int = 10, in_channels: int = 1, input_size: int = 224, training: bool = False):
    """(module, params): the book initialises with ``model.init`` on a dummy NHWC batch.
    The book's ``num_classes = 10`` is a plain class attribute, not a field, so another
    class count needs a subclass."""
    cls = NiN if num_classes == 10 else type("NiN", (NiN,), {"num_classes": num_classes})
    model = cls(training=training)
    x = jax.numpy.zeros((1, input_size, input_size, in_channels))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    return model, params


def param_count(built) -> int:
    _, params = built
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def layer_outputs(built, x: np.ndarray) -> list[np.ndarray]:
    """Each top-level layer's output, converted to NCHW (the book's net is NHWC)."""
    model, params = built

    def run(module, h):
        outs = []
        for layer in module.net.layers:
            h = layer(h)
            outs.append(h)
        return outs

    outs = nn.apply(run, model)({"params": params}, jax.numpy.asarray(x.transpose(0, 2, 3, 1)))
    return [np.asarray(a).transpose(0, 3, 1, 2) if a.ndim == 4 else np.asarray(a) for a in outs]


def forward(built, x: np.ndarray) -> np.ndarray:
    model, params = built
    return np.asarray(model.apply({"params": params}, jax.numpy.asarray(x.transpose(0, 2, 3, 1))))


def make_train_step(built, lr: float = 0.05, momentum: float = 0.0, weight_decay: float = 0.0):
    """The book's training step (``d2l.Trainer.fit_epoch``, JAX tab): a ``jax.jit``-compiled
    loss differentiated with ``jax.value_and_grad``, then ``TrainState.apply_gradients`` with
    ``optax.sgd`` outside the jit, and a fresh dropout key per step; the book's plain SGD
    unless ``momentum`` or ``weight_decay`` is given (``optax.add_decayed_weights`` before a
    momentum ``optax.sgd``: the recipe's SGD, for an equal-work comparison)."""
    import optax
    from flax.training import train_state

    module, params = built
    training = module.clone(training=True)
    tx = optax.sgd(lr, momentum=momentum or None)
    if weight_decay:
        tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
    state = {"s": train_state.TrainState.create(apply_fn=training.apply, params=params, tx=tx)}
    key = {"k": jax.random.PRNGKey(0)}

    @jax.jit
    def loss_fn(p, x, y, dropout_key):
        logits = training.apply({"params": p}, x, rngs={"dropout": dropout_key})
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        key["k"], sub = jax.random.split(key["k"])
        loss, grads = jax.value_and_grad(loss_fn)(state["s"].params, jax.numpy.asarray(x.transpose(0, 2, 3, 1)), y, sub)
        state["s"] = state["s"].apply_gradients(grads=grads)
        return float(loss)

    return step
