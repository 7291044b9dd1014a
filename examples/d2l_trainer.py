"""Train the suite's native NiN with the d2l book's own ``Classifier`` / ``Trainer``.

    python examples/d2l_trainer.py --framework mxnet|jax|tensorflow [--epochs 1] [--subset 4000]

The book (Zhang et al., Dive into Deep Learning, §8.3) writes ``class NiN(d2l.Classifier)``
with a ``net`` of its own and trains it with ``d2l.Trainer(max_epochs).fit(model, data)``.
Here ``net`` is the suite's NiN built from ``nin.get_spec("nin_mnist")``, and the data is a
``d2l.DataModule`` over ``nin.loaders.load_mnist5k()`` (no download), so the d2l package's
``Trainer.fit`` drives our model: its loop, its loss, its accuracy, its ``ProgressBoard``.

Two hooks of the book's ``Module`` are overridden, as the book itself does in later chapters:
``forward`` passes the train/eval switch the way our models take it, and
``configure_optimizers`` returns the framework's own SGD with the suite's recipe
(``nin.train.Recipe``: momentum 0.9, weight decay 5e-4, a linear warmup to lr 0.01 (one epoch,
capped at a fifth of a short run) and cosine decay, batch 8, He draws centred per filter, dropout
off) written with the framework's own
schedule object: MXNet's ``CosineScheduler``, ``optax.warmup_cosine_decay_schedule``, Keras'
``CosineDecay(warmup_target=...)``.  With the book's own settings (plain SGD, lr 0.1,
batch 128, dropout on) this NiN sits at chance for the first epochs — the plateau the README's
"Robustness" paragraph describes.  Per framework:

* **mxnet** — ``d2l.mxnet``; legacy ``nd`` arrays, NCHW.  ``npx.set_np()`` is never called (our
  Gluon backend uses the ``nd`` API; the switch is process-wide).
* **jax** — ``d2l.jax``; NHWC arrays, ``NiN.__call__(x, train)``.  d2l 1.0.3 annotates a field
  with ``jax.random.PRNGKeyArray``, which JAX 0.4.24+ removed; it is aliased to ``jax.Array``.
* **tensorflow** — ``d2l.tensorflow`` needs ``TF_USE_LEGACY_KERAS=1`` (``tf.keras`` is tf_keras 2),
  which this script sets before TensorFlow is imported; the ``net`` is our Keras 3 model.
* **torch** — not offered: ``d2l.torch`` imports torchvision, which does not load here.

Prints the final validation accuracy (``val_acc``, over the whole validation set) and the time.
matplotlib runs on the Agg backend; ``--plot FILE`` saves the ProgressBoard's figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402

import nin  # noqa: E402
from nin.train import Recipe, spec_for  # noqa: E402

FRAMEWORKS = ("mxnet", "jax", "tensorflow")


class Loader:
    """What ``d2l.Trainer`` needs from a data loader: ``len()`` and iteration over
    ``(X, y)`` batches; a new shuffle (``nin.datasets.batches``' ``(seed, epoch)``) each pass."""

    def __init__(self, x, y, batch_size, shuffle, convert):
        self.x, self.y, self.batch_size, self.shuffle, self.convert = x, y, batch_size, shuffle, convert
        self.epoch = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        from nin.datasets import batches as nin_batches

        batches = nin_batches(self.x, self.y, self.batch_size, shuffle=self.shuffle, epoch=self.epoch)
        self.epoch += 1
        for xb, yb in batches:
            yield self.convert(xb, yb)


def mnist5k_module(d2l, convert, subset, batch_size, channels_last):
    """A ``d2l.DataModule`` over mnist5k: ``subset`` training digits, the 1,000 test digits
    for validation, batches in the framework's layout and array type."""
    from nin.loaders import load_mnist5k

    class MNIST5k(d2l.DataModule):
        def __init__(self, batch_size=64, subset=1000):
            super().__init__()
            self.save_hyperparameters()
            data = load_mnist5k()
            x_train, x_val = data.x_train[:subset], data.x_test
            if channels_last:
                x_train, x_val = x_train.transpose(0, 2, 3, 1), x_val.transpose(0, 2, 3, 1)
            self.train = (np.ascontiguousarray(x_train), data.y_train[:subset])
            self.val = (np.ascontiguousarray(x_val), data.y_test)

        def get_dataloader(self, train):
            x, y = self.train if train else self.val
            return Loader(x, y, self.batch_size, train, convert)

    return MNIST5k(batch_size=batch_size, subset=subset)


def run_mxnet(spec, args):
    from nin.frameworks.mxnet import NiN as SuiteNiN  # first: it makes MXNet importable beside this NumPy

    # isort: split
    import mxnet as mx
    from d2l import mxnet as d2l
    from mxnet import gluon, nd

    class NiN(d2l.Classifier):
        def __init__(self, spec, recipe, steps):
            super().__init__()
            self.save_hyperparameters()
            self.net = SuiteNiN(spec)
            self.net.initialize()  # every layer knows its input width: no deferred shapes
            # the recipe's initialisation from the suite (Gluon's default Uniform(±0.07) leaves this NiN
            # predicting one class)
            nin.get_backend("mxnet").load_state(self.net, nin.init_weights(spec, recipe.seed, recipe.init))
            self.net.hybridize()

        def configure_optimizers(self):
            total, warmup = self.steps
            schedule = mx.lr_scheduler.CosineScheduler(
                max_update=total, base_lr=self.recipe.lr, final_lr=0.0, warmup_steps=warmup
            )
            return gluon.Trainer(
                self.parameters(),
                "sgd",
                {"momentum": self.recipe.momentum, "wd": self.recipe.weight_decay, "lr_scheduler": schedule},
            )

    def convert(x, y):
        return nd.array(x), nd.array(y, dtype=y.dtype)

    model = NiN(spec, args.recipe, args.steps)
    data = mnist5k_module(d2l, convert, args.subset, args.recipe.batch_size, channels_last=False)
    fit(d2l.Trainer(max_epochs=args.epochs), model, data, args)
    correct = [model.accuracy(model(x), y, averaged=False).asnumpy() for x, y in data.val_dataloader()]
    return model, float(np.concatenate(correct).mean())


def run_jax(spec, args):
    import jax

    if not hasattr(jax.random, "PRNGKeyArray"):  # d2l 1.0.3's Trainer.fit annotates with it
        jax.random.PRNGKeyArray = jax.Array
    import optax
    from d2l import jax as d2l

    from nin.frameworks.jax import NiN as SuiteNiN

    class NiN(d2l.Classifier):
        spec: nin.NiNSpec = None
        recipe: nin.train.Recipe = None
        steps: tuple[int, int] = (0, 0)
        training: bool = True

        def setup(self):
            self.net = SuiteNiN(self.spec)

        def forward(self, X):
            return self.net(X, train=self.training)

        def apply_init(self, dummy_input, key):
            return {"params": {"net": initial}}

        def configure_optimizers(self):
            total, warmup = self.steps
            schedule = optax.warmup_cosine_decay_schedule(0.0, self.recipe.lr, warmup, total)
            return optax.chain(
                optax.add_decayed_weights(self.recipe.weight_decay),
                optax.sgd(schedule, momentum=self.recipe.momentum),
            )

    # the recipe's initialisation from the suite, in Flax's layout (the adapter does the conversion)
    initial = nin.get_backend("jax").build(spec, args.recipe.seed, init=args.recipe.init).params
    model = NiN(spec=spec, recipe=args.recipe, steps=args.steps)
    data = mnist5k_module(d2l, lambda x, y: (x, y), args.subset, args.recipe.batch_size, channels_last=True)
    trainer = d2l.Trainer(max_epochs=args.epochs)
    fit(trainer, model, data, args, key=jax.random.PRNGKey(args.seed))
    state = trainer.state
    correct = [np.asarray(model.accuracy(state.params, (x,), y, state, False)) for x, y in data.val_dataloader()]
    return model, float(np.concatenate(correct).mean())


def run_tensorflow(spec, args):
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("d2l.tensorflow needs TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import keras
    import tensorflow as tf
    from d2l import tensorflow as d2l

    from nin.frameworks.tensorflow import NiN as SuiteNiN

    class NiN(d2l.Classifier):
        def __init__(self, spec, recipe, steps):
            super().__init__()
            self.save_hyperparameters()
            self.net = SuiteNiN(spec)
            nin.get_backend("tensorflow").load_state(self.net, nin.init_weights(spec, recipe.seed, recipe.init))

        def call(self, X):
            return self.net(X, training=bool(self.training))

        @property
        def trainable_variables(self):
            # tf_keras tracks only tf_keras layers; the Keras 3 net's variables are its own
            return self.net.trainable_variables

        def configure_optimizers(self):
            # the book's tf.keras (tf_keras) SGD cannot update Keras 3 variables.  Keras'
            # weight_decay is decoupled (w -= lr·wd·w), not added to the gradient as in the others
            total, warmup = self.steps
            schedule = keras.optimizers.schedules.CosineDecay(
                0.0, total - warmup, warmup_target=self.recipe.lr, warmup_steps=warmup
            )
            return keras.optimizers.SGD(schedule, momentum=self.recipe.momentum, weight_decay=self.recipe.weight_decay)

    def convert(x, y):
        return tf.constant(x), tf.constant(y)

    tf.random.set_seed(args.seed)
    keras.utils.set_random_seed(args.seed)
    model = NiN(spec, args.recipe, args.steps)
    data = mnist5k_module(d2l, convert, args.subset, args.recipe.batch_size, channels_last=True)
    fit(d2l.Trainer(max_epochs=args.epochs), model, data, args)
    model.training = False
    correct = [model.accuracy(model(x), y, averaged=False).numpy() for x, y in data.val_dataloader()]
    return model, float(np.concatenate(correct).mean())


def fit(trainer, model, data, args, **kwargs):
    """``trainer.fit(model, data)``; the board draws only when a figure is asked for (outside
    a notebook, IPython's ``display`` just prints the figure's repr, which is hidden)."""
    model.board.display = bool(args.plot)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(model, data, **kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", required=True, choices=FRAMEWORKS)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subset", type=int, default=4000, help="training digits (of 4,000)")
    parser.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    parser.add_argument("--lr", type=float, default=Recipe.lr, help="peak learning rate")
    parser.add_argument(
        "--warmup-epochs",
        type=float,
        help=f"linear warmup length (default: the recipe's {Recipe.warmup_epochs:g}, capped at a fifth of the run "
        "so that a short run still decays)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="FILE", help="save the d2l ProgressBoard figure here")
    args = parser.parse_args(argv)
    if args.framework == "tensorflow":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before nin or anything else imports TF

    # the suite's recipe; its spec_for turns the model's dropout off as the recipe says
    warmup = min(Recipe.warmup_epochs, args.epochs / 5) if args.warmup_epochs is None else args.warmup_epochs
    args.recipe = Recipe(
        lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, warmup_epochs=warmup
    )
    spec = spec_for(args.recipe, nin.get_spec("nin_mnist"))
    steps_per_epoch = -(-args.subset // args.batch_size)
    args.steps = (args.epochs * steps_per_epoch, round(args.recipe.warmup_epochs * steps_per_epoch))
    start = time.perf_counter()
    model, acc = {"mxnet": run_mxnet, "jax": run_jax, "tensorflow": run_tensorflow}[args.framework](spec, args)
    seconds = time.perf_counter() - start
    board = model.board.data.get("val_acc") or []
    print(f"framework={args.framework} epochs={args.epochs} subset={args.subset} seconds={seconds:.1f}")
    if board:
        print(f"board val_acc (mean over batches, last epoch)={float(np.asarray(board[-1].y).mean()):.4f}")
    print(f"val_acc={acc:.4f}")
    if args.plot:
        import matplotlib.pyplot as plt

        plt.gcf().savefig(args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
