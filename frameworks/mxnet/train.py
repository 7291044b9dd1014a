"""Training for the MXNet/Gluon backend (frameworks/README.md, "Training"): a
``gluon.Trainer`` on the hybridized ``NiN``, the forward recorded by ``autograd``.

    trainer = nin.train.get_trainer("mxnet", "nin_mnist", nin.train.Recipe())
    trainer.begin_epoch(0)
    loss, correct = trainer.step(x, y, lr=0.05)

The update is the contract's, PyTorch's ``torch.optim.SGD``: ``b ← μ·b + (g + λ·w)``,
``w ← w − lr·b``.  MXNet's ``sgd`` keeps ``mom = −lr·b`` instead
(``mom ← μ·mom − lr·(g + wd·w)``, ``w ← w + mom``), which is the same update only while the
rate stays constant: at a new rate its old momentum still carries the old one.  Rather than
rescale ``mom`` by ``lr_new / lr_old`` before every step and convert it (``b = −mom / lr``)
on export, the Gluon ``Trainer`` here drives ``CoupledSGD``, an ``mx.optimizer.Optimizer``
whose ``update`` is PyTorch's, so its state is ``b`` itself: the update is exact for any
schedule, and a checkpoint (export, then load) is lossless, so a resumed run continues bit for
bit.  Its weight decay is MXNet's ``wd``, coupled as in ``sgd``, on every parameter (Gluon
gives biases ``wd_mult`` 1 too).

Dropout masks come from MXNet's generator for the model's device, which ``begin_epoch``
seeds with ``derive_seed(recipe.seed, epoch)``.  ``mx.random.seed`` is process-wide: it
reseeds every MXNet random operation on that device, not only this model's dropout.
"""

from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

import nin
from nin.deprecated import renamed
from nin.train import Recipe, check_momentum, derive_seed

from .adapter import export_state as export_weights
from .adapter import from_native, load_state, native_input, native_labels, native_parameters, to_native
from .model import NiN


class CoupledSGD(mx.optimizer.Optimizer):
    """SGD with momentum in PyTorch's convention: ``b ← μ·b + (g + wd·w)``, ``w ← w − lr·b``.
    No dampening, no Nesterov; ``g`` is the gradient times ``rescale_grad``.

    The state of parameter ``i`` is ``buffers[i]``, allocated by the caller (also at μ = 0,
    where it holds the last ``g + wd·w``, as ``nin.train.sgd_reference`` does) and updated in
    place, so the caller reads and writes the momentum without reaching into Gluon's
    private updater, and it exists before the first step."""

    def __init__(self, buffers: list[mx.nd.NDArray], momentum: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.buffers, self.momentum = buffers, check_momentum(momentum)

    def create_state(self, index: int, weight: mx.nd.NDArray) -> mx.nd.NDArray:
        return self.buffers[index]

    def update(self, index: int, weight: mx.nd.NDArray, grad: mx.nd.NDArray, state: mx.nd.NDArray) -> None:
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        state[:] = self.momentum * state + self.rescale_grad * grad + wd * weight
        # in place, not ``weight[:] = …``: after an inference pass oneDNN may hold a weight in
        # its own blocked layout, and a copy into it fails ("Check failed: to.IsDefaultData()";
        # seen with nin3d and dropout on: the second epoch's first step died)
        weight -= lr * state


class Trainer:
    """The ``nin.train.Trainer`` contract on a Gluon ``NiN`` built by ``adapter.build``."""

    def __init__(self, model: NiN, recipe: Recipe):
        self.model, self.recipe, self.spec = model, recipe, model.spec
        params = native_parameters(model)
        self._ctx = next(iter(params.values())).list_ctx()[0]
        self._names = list(params)
        self._buffers = [mx.nd.zeros(param.shape, ctx=self._ctx, dtype=np.float32) for param in params.values()]
        self.optimizer = CoupledSGD(
            self._buffers, momentum=recipe.momentum, wd=recipe.weight_decay, learning_rate=recipe.lr
        )
        # One device and no kvstore: the Trainer updates through its own Updater, which asks
        # the optimizer for state ``i`` of the i-th parameter, i.e. canonical order.
        self._trainer = gluon.Trainer(list(params.values()), self.optimizer, kvstore=None)
        self._loss = gluon.loss.SoftmaxCrossEntropyLoss()

    def begin_epoch(self, epoch: int) -> None:
        """Seed the device's generator (process-wide) from ``(recipe.seed, epoch)``."""
        mx.random.seed(derive_seed(self.recipe.seed, epoch), ctx=self._ctx)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One SGD step in training mode; (mean loss before it, correct predictions)."""
        x, y, target = self._batch(x, y)
        # train_mode=True also because MXNet's oneDNN max pooling keeps the workspace its
        # backward needs only in training mode (see adapter.loss_and_grads).
        with autograd.record(train_mode=True):
            logits = self.model(x)
            loss = self._loss(logits, target).mean()
        loss.backward()
        self._trainer.set_learning_rate(lr)
        self._trainer.step(1)  # the loss is already the batch mean: rescale_grad = 1
        return float(loss.asscalar()), _correct(logits, y)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode; (summed loss, correct predictions)."""
        x, y, target = self._batch(x, y)
        with autograd.predict_mode():
            logits = self.model(x)
            loss_sum = self._loss(logits, target).sum()
        return float(loss_sum.asscalar()), _correct(logits, y)

    def export_state(self) -> dict[str, nin.weights.Weights]:
        """Canonical weights and momentum buffers (PyTorch's ``b``; Gluon's layout is canonical)."""
        momentum = from_native(self.model, dict(zip(self._names, self._buffers, strict=True)))
        return {"weights": export_weights(self.model), "momentum": momentum}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        """The inverse of ``export_state`` (both dicts validated against the spec)."""
        momentum = to_native(self.model, nin.validate_weights(self.spec, state["momentum"]))
        load_state(self.model, state["weights"])
        for name, buffer in zip(self._names, self._buffers, strict=True):
            buffer[:] = momentum[name]

    def _batch(self, x: np.ndarray, y: np.ndarray) -> tuple[mx.nd.NDArray, np.ndarray, mx.nd.NDArray]:
        """Checked images as an NDArray, checked labels, and the labels as the loss takes them."""
        x = native_input(self.model, x)
        y = nin.check_labels(self.spec, y, x.shape[0])
        return x, y, native_labels(self.model, y, len(y))


def _correct(logits: mx.nd.NDArray, y: np.ndarray) -> int:
    return int((logits.argmax(axis=1).asnumpy().astype(np.int64) == y).sum())


# the old name, after the framework whose convention the update follows rather than what it does
__getattr__ = renamed(__name__, {"TorchSGD": "CoupledSGD"}, globals())
