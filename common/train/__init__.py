"""Training, written once for every backend, one job per module:

* ``nin.train.recipe``: ``Recipe`` (how to train) and its schedules, ``lr_at``, ``spec_for``,
  ``derive_seed``;
* ``nin.train.oracle``: the NumPy oracle of one SGD update (``sgd_reference``) and
  ``NumpyTrainer``, the trainer on it;
* ``nin.train.checkpoint``: the checkpoint format (``nin-checkpoint/2``, the spec's canonical
  JSON as its identity) and the checks a resume makes;
* ``nin.train.loop``: ``fit``, which drives any backend's ``Trainer`` (metrics, curves,
  checkpoints), and ``run_seeds``.

The ``nin train`` command is ``nin.train_command``, above this package and ``nin.distributed``
(which runs ``fit`` in each worker of a data-parallel job).

The update is PyTorch's ``torch.optim.SGD`` (coupled L2 weight decay, no dampening, no
Nesterov): ``b ← μ·b + (g + λ·w)``, ``w ← w − lr·b``.

    recipe = Recipe(epochs=10)
    trainer = get_trainer("torch", "nin_mnist", recipe)
    history = fit(trainer, load_dataset("mnist5k"), recipe, "runs/torch")

Everything random in a run is a function of ``(recipe.seed, epoch)``: the initial weights, the
batch order of every epoch, and the dropout generator, which a trainer reseeds in
``begin_epoch``.  A run stopped after epoch k and resumed from its checkpoint therefore ends
with the same weights as one that never stopped.

The names below are this package's public ones, as ``nin.train`` has always offered them.
"""

from __future__ import annotations

from ..datasets import batches
from ..files import atomic_write
from .checkpoint import CHECKPOINT, Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .loop import (
    CURVES,
    DEGRADED_MARGIN,
    METRICS,
    SUMMARY,
    Trainer,
    TrainingInterrupted,
    backend_name,
    fit,
    get_trainer,
    parse_seeds,
    run_seeds,
    stuck_threshold,
    write_curves,
)
from .oracle import NumpyTrainer, sgd_reference, zero_momentum
from .recipe import (
    SCHEDULES,
    Recipe,
    RecipeError,
    check_momentum,
    derive_seed,
    lr_at,
    momentum_problems,
    spec_for,
)

__all__ = [
    "CHECKPOINT",
    "CURVES",
    "DEGRADED_MARGIN",
    "METRICS",
    "SCHEDULES",
    "SUMMARY",
    "Checkpoint",
    "CheckpointError",
    "NumpyTrainer",
    "Recipe",
    "RecipeError",
    "Trainer",
    "TrainingInterrupted",
    "atomic_write",
    "backend_name",
    "batches",
    "check_momentum",
    "derive_seed",
    "fit",
    "get_trainer",
    "load_checkpoint",
    "lr_at",
    "momentum_problems",
    "parse_seeds",
    "run_seeds",
    "save_checkpoint",
    "sgd_reference",
    "spec_for",
    "stuck_threshold",
    "write_curves",
    "zero_momentum",
]
