"""Training, written once for the four backends: the recipe, the NumPy oracle of one SGD
update, a NumPy trainer, and the loop that drives any backend's ``Trainer``.

The update is PyTorch's ``torch.optim.SGD`` (coupled L2 weight decay, no dampening, no
Nesterov): ``b ← μ·b + (g + λ·w)``, ``w ← w − lr·b``.  The schedule is linear warmup
(Goyal et al. 2017, arXiv:1706.02677) followed by cosine decay (Loshchilov & Hutter,
arXiv:1608.03983), step decay or a constant rate.  No label smoothing: the loss is the plain
mean softmax cross-entropy that ``nin.reference`` computes.

    recipe = Recipe(epochs=10)
    trainer = get_trainer("torch", "nin_mnist", recipe)
    history = fit(trainer, load_dataset("mnist5k"), recipe, "runs/torch")

Everything random in a run is a function of ``(recipe.seed, epoch)``: the initial weights, the
batch order of every epoch, and the dropout generator, which a trainer reseeds in
``begin_epoch``.  A run stopped after epoch k and resumed from its checkpoint therefore ends
with the same weights as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import reference
from .datasets import batches
from .errors import NinError, UnknownNameError
from .extras import install_hint, optional_module, require
from .files import atomic_write
from .shapes import check_input
from .spec import Dropout, NiNSpec, spec_json
from .weights import INITIALIZERS, UNREADABLE, Weights, init_weights, validate_weights
from .zoo import get_spec

SCHEDULES = ("cosine", "step", "constant")
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
SUMMARY = "summary.json"


class RecipeError(NinError, ValueError):
    """A recipe value out of range (negative learning rate, unknown schedule...)."""


class CheckpointError(NinError, ValueError):
    """A checkpoint that is missing, unreadable, or from a different model, recipe or dataset."""


class TrainingInterrupted(NinError):
    """Ctrl-C during ``fit``: the state after the last completed epoch was saved first."""

    def __init__(self, epoch: int, checkpoint: Path):
        self.epoch, self.checkpoint = epoch, checkpoint
        super().__init__(
            f"interrupted; the state after epoch {epoch} is saved in {checkpoint}. "
            f"Resume with fit(..., resume=True) or `nin train ... --resume`"
        )


# -- the recipe ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How to train: SGD with momentum and weight decay, a learning-rate schedule, batch
    size, epochs, seed, initialiser and dropout on/off.

    The defaults train ``nin_mnist`` on ``mnist5k`` (4,000 training digits) past 97 % test
    accuracy in 10 epochs.  A NiN's classifier block ends in a ReLU, so a class channel that
    is zero everywhere gets no gradient back and its class is never predicted; the d2l recipe
    (Xavier init, lr 0.1) ends stuck or short of some classes in a visible share of runs.
    Such channels die in two ways, and the defaults answer both:

    * at initialisation — every layer's input is non-negative, so random filters shift whole
      channels below zero (``nin.weights.init_weights``): with He init 5 of 16 seeds of
      ``nin_mnist`` started with a dead class map, and 2 of 10 full runs ended at 68 % and
      82 % (with the earlier 0.2-epoch warmup).  ``centered`` init (He normal, filters summing
      to zero) starts every channel alive.  With the one-epoch warmup below, seeds 0–9 ended at
      97.70 ± 0.29 % centred and 97.34 ± 0.48 % with plain He init (torch, README);
    * early in training, while the network is still on its plateau at chance (loss 2.30) and
      noisy steps can push a barely-active channel under.  A one-epoch linear warmup to lr 0.01
      (with momentum 0.9, an effective step of 0.1) keeps those steps small until it has left
      the plateau: with ``centered`` init and a 0.2-epoch warmup 1 of 14 seeds lost a class in
      the first three epochs, with a one-epoch warmup 0 of 16.

    Small batches (8), because the plateau lasts a number of *steps* — at batch 8 it is over
    within the first epoch or two.
    Dropout is off by default: on this set the network still underfits after 10 epochs
    (train accuracy ≈ 98.5 %), and dropout only lengthens the plateau.

    ``milestones`` are fractions of the run at which the ``step`` schedule multiplies the rate
    by ``gamma``; ``warmup_epochs`` may be fractional."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    batch_size: int = 8
    epochs: int = 10
    seed: int = 0
    init: str = "centered"
    dropout: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        problems = []
        if self.schedule not in SCHEDULES:
            raise UnknownNameError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.init not in INITIALIZERS:
            raise UnknownNameError(f"unknown initializer {self.init!r}; known: {', '.join(INITIALIZERS)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0; got {self.lr}")
        problems += momentum_problems(self.momentum)
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be ≥ 0; got {self.weight_decay}")
        for key in ("batch_size", "epochs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{key} must be a positive int; got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be an int ≥ 0; got {self.seed!r}")
        if isinstance(self.epochs, int) and not 0 <= self.warmup_epochs <= self.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs={self.epochs}]; got {self.warmup_epochs}")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            problems.append(f"milestones must be increasing fractions of the run in (0, 1); got {self.milestones}")
        if not 0 < self.gamma <= 1:
            problems.append(f"gamma must be in (0, 1]; got {self.gamma}")
        if problems:
            raise RecipeError("bad recipe: " + "; ".join(problems))

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recipe:
        return cls(**data)


def momentum_problems(momentum: float) -> list[str]:
    """What is wrong with a momentum coefficient μ (none if 0 ≤ μ < 1): the one check behind
    ``Recipe`` and every backend's optimizer."""
    return [] if 0 <= momentum < 1 else [f"momentum must be in [0, 1); got {momentum}"]


def check_momentum(momentum: float) -> float:
    """``momentum`` if it is in [0, 1), else a ``RecipeError``."""
    if problems := momentum_problems(momentum):
        raise RecipeError(problems[0])
    return momentum


def lr_at(recipe: Recipe, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The learning rate of step ``step`` (from 0) of epoch ``epoch`` (from 0).

    Warmup rises linearly to ``recipe.lr``, reaching it on its last step; cosine then decays
    towards 0 over the remaining steps (never reaching it), step decay multiplies by ``gamma``
    from each milestone epoch on, constant stays."""
    i = epoch * steps_per_epoch + step
    warm = round(recipe.warmup_epochs * steps_per_epoch)
    if i < warm:
        return recipe.lr * (i + 1) / warm
    if recipe.schedule == "cosine":
        total = recipe.epochs * steps_per_epoch
        return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * (i - warm) / max(1, total - warm)))
    if recipe.schedule == "step":
        return recipe.lr * recipe.gamma ** sum(epoch >= m * recipe.epochs for m in recipe.milestones)
    return recipe.lr


def spec_for(recipe: Recipe, spec: NiNSpec) -> NiNSpec:
    """The spec a recipe trains: unchanged with dropout on; every Dropout rate set to 0 with
    ``recipe.dropout=False`` (the layers stay, so names and weights do not change)."""
    if recipe.dropout:
        return spec
    return spec.replace(layers=tuple(Dropout(0.0) if isinstance(layer, Dropout) else layer for layer in spec.layers))


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for one part of a run, e.g. ``derive_seed(recipe.seed, epoch)``: what a
    trainer seeds its dropout generator with in ``begin_epoch``."""
    return int(np.random.SeedSequence((seed, *keys)).generate_state(1)[0])


# -- the update and its NumPy trainer ----------------------------------------------------------


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


class Trainer(Protocol):
    """What ``fit`` drives; each backend's ``frameworks/<name>/train.py`` implements it as
    ``Trainer(model, recipe)`` with the framework's own optimizer."""

    spec: NiNSpec  # the spec the model was built from (``spec_for(recipe, spec)``)

    def begin_epoch(self, epoch: int) -> None:
        """Reseed the dropout generator from ``derive_seed(recipe.seed, epoch)``."""

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One update in training mode; (mean loss before it, number of correct predictions)."""

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode; (summed loss, number of correct predictions)."""

    def export_state(self) -> dict[str, Weights]:
        """``{"weights": canonical weights, "momentum": {name: PyTorch-convention buffer}}``."""

    def load_state(self, state: dict[str, Weights]) -> None:
        """The inverse of ``export_state``."""


_CONTRACT = ("begin_epoch", "step", "evaluate", "export_state", "load_state")


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


def get_trainer(backend: str, model: str | NiNSpec, recipe: Recipe, device: str = "cpu") -> Trainer:
    """A trainer for a zoo model name or a spec: ``"numpy"`` gives ``NumpyTrainer``; a
    framework backend builds its model from ``spec_for(recipe, spec)`` with the recipe's seed
    and initialiser and wraps it in ``nin.frameworks.<backend>.train.Trainer``."""
    spec = get_spec(model) if isinstance(model, str) else model
    if backend == "numpy":
        return NumpyTrainer(spec, recipe)
    from .frameworks import backend_trains, get_backend, list_backends

    if not backend_trains(backend):
        raise NinError(
            f"the {backend} backend runs inference only and cannot train; train with numpy or one of: "
            f"{', '.join(list_backends())}"
        )
    adapter = get_backend(backend)
    return adapter.Trainer(adapter.build(spec_for(recipe, spec), recipe.seed, device=device, init=recipe.init), recipe)


def backend_name(trainer: Trainer) -> str:
    """``numpy`` for ``NumpyTrainer``, else the backend whose ``train`` module defines it."""
    from .frameworks import backend_of

    name = backend_of(type(trainer).__module__)
    if name is not None:
        return name
    return "numpy" if isinstance(trainer, NumpyTrainer) else type(trainer).__name__


# -- checkpoints -----------------------------------------------------------------------------

# nin-checkpoint/2: the spec is its canonical JSON data (``nin.spec.spec_json``) in the metadata.
# nin-checkpoint/1 (earlier versions) held ``sha256(repr(spec))[:16]`` instead, which changed with
# any field added to a spec class; such a checkpoint resumes where that hash still matches.
_FORMAT = "nin-checkpoint/2"
_FORMAT_1 = "nin-checkpoint/1"
_MOMENTUM = "momentum."


def _format_1_hash(spec: NiNSpec) -> str:
    """A nin-checkpoint/1 checkpoint's spec field."""
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """A training state: canonical weights, momentum buffers, completed epochs and metadata
    (format, backend, model, the spec's canonical JSON, recipe, data set, metrics history,
    and whatever else the writer added: the metadata is an open dict)."""

    epoch: int
    state: dict[str, Weights]
    meta: dict[str, Any]


def save_checkpoint(path: str | Path, state: dict[str, Weights], meta: dict[str, Any]) -> Path:
    """One ``.npz``: the canonical weights under their own names, each momentum buffer as
    ``momentum.<name>`` (PyTorch's ``b``, whichever backend wrote it, so any backend resumes
    it), and ``meta`` as a JSON string under the format ``nin-checkpoint/2``; written
    atomically."""
    arrays = {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in state["weights"].items()}
    arrays |= {_MOMENTUM + name: np.ascontiguousarray(b, dtype=np.float32) for name, b in state["momentum"].items()}
    arrays["meta"] = np.array(json.dumps({**meta, "format": _FORMAT}))
    return atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def _format_problem(path: Path, meta: Any) -> str | None:
    """Why ``meta`` is not the metadata of a checkpoint this version reads, or None."""
    found = meta.get("format") if isinstance(meta, dict) else None
    if found in (_FORMAT, _FORMAT_1):
        return None
    if isinstance(found, str) and found.startswith("nin-checkpoint/"):
        return (
            f"{path} is a {found} checkpoint, written by a newer nin-suite; this one reads {_FORMAT_1} and "
            f"{_FORMAT}: upgrade nin-suite to resume it"
        )
    return f"{path} is a {found or type(meta).__name__!r} file, not a nin-checkpoint ({_FORMAT})"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` (format nin-checkpoint/2, or /1 from
    before the spec's canonical JSON); a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume; start without --resume")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except UNREADABLE as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); it may be truncated or corrupt: "
            f"start again without --resume in another output folder"
        ) from None
    if problem := _format_problem(path, meta):
        raise CheckpointError(problem)
    if not isinstance(meta.get("epoch"), int) or not isinstance(meta.get("history"), list):
        raise CheckpointError(f"{path} is a damaged checkpoint: its metadata lacks the epoch or history")
    damaged = [k for k, v in arrays.items() if v.dtype.kind != "f" or not np.isfinite(v).all()]
    if damaged:
        raise CheckpointError(f"{path} holds non-finite or non-float tensors: {', '.join(damaged)}")
    momentum = {k[len(_MOMENTUM) :]: v for k, v in arrays.items() if k.startswith(_MOMENTUM)}
    weights = {k: v for k, v in arrays.items() if not k.startswith(_MOMENTUM)}
    return Checkpoint(meta["epoch"], {"weights": weights, "momentum": momentum}, meta)


def _run_meta(trainer: Trainer, recipe: Recipe, data_name: str) -> dict[str, Any]:
    spec = trainer.spec
    return {
        "backend": backend_name(trainer),
        "model": spec.name,
        "spec": spec_json(spec),
        "in_channels": spec.in_channels,
        "input_size": list(spec.input_size),
        "num_classes": spec.num_classes,
        "data": data_name,
        "recipe": recipe.to_json(),
    }


def _json_differences(there: Any, now: Any, where: str = "spec") -> list[str]:
    """Where two JSON values differ, as ``"spec.layers[4].rate 0.5 there, 0.0 now"``."""
    if isinstance(there, dict) and isinstance(now, dict):
        keys = [*now, *(k for k in there if k not in now)]
        return [d for k in keys for d in _json_differences(there.get(k), now.get(k), f"{where}.{k}")]
    if isinstance(there, list) and isinstance(now, list) and len(there) == len(now):
        return [
            d for i, (a, b) in enumerate(zip(there, now, strict=True)) for d in _json_differences(a, b, f"{where}[{i}]")
        ]
    return [] if there == now else [f"{where} {json.dumps(there)} there, {json.dumps(now)} now"]


def _spec_differences(saved: dict[str, Any], spec: NiNSpec) -> list[str]:
    """How a nin-checkpoint/2's spec differs from ``spec`` (at most three places named)."""
    there, now = saved.get("spec"), spec_json(spec)
    if there == now:  # JSON data: key order does not count, floats round-trip exactly
        return []
    differences = _json_differences(there, now)
    more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
    return ["; ".join(differences[:3]) + more]


def _check_resume(path: Path, saved: dict[str, Any], now: dict[str, Any], spec: NiNSpec) -> None:
    """Everything but the backend and the number of epochs must match.  A recipe field the
    checkpoint lacks (added to ``Recipe`` since) counts as its default."""
    problems = []
    for key in ("model", "in_channels", "input_size", "num_classes", "data"):
        if saved.get(key) != now[key]:
            problems.append(f"{key} {saved.get(key)!r} there, {now[key]!r} now")
    format_1 = saved["format"] == _FORMAT_1
    if not problems and not format_1:  # another model's spec differs everywhere: its name says enough
        problems += _spec_differences(saved, spec)
    defaults, recipe = Recipe().to_json(), saved.get("recipe") or {}
    for key, value in now["recipe"].items():
        if key != "epochs" and recipe.get(key, defaults[key]) != value:
            problems.append(f"{key} {recipe.get(key, defaults[key])!r} there, {value!r} now")
    if problems:
        raise CheckpointError(
            f"{path} is from a different run ({'; '.join(problems)}); "
            f"resume with the same settings, or start afresh in another output folder"
        )
    if format_1 and saved.get("spec") != _format_1_hash(spec):
        raise CheckpointError(
            f"{path} is a {_FORMAT_1} checkpoint, which names its spec by a hash of the spec's Python repr, and "
            f"that hash does not match {spec.name} as this nin-suite defines it (its layers differ, or the spec "
            f"type changed since): resume it with the nin-suite that wrote it, or start afresh in another output folder"
        )


# -- the loop ----------------------------------------------------------------------------------


def write_curves(history: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy against epoch, train and test, as a PNG (matplotlib's Agg canvas)."""
    require("matplotlib", "progress", "drawing training curves")
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"test_{key}"] for r in history], "s-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(0, 1)
    if title:
        fig.suptitle(title)
    return atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=100))


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in history).encode()))


def _check_fit(trainer: Trainer, dataset, recipe: Recipe) -> None:
    missing = [name for name in (*_CONTRACT, "spec") if not hasattr(trainer, name)]
    if missing:
        raise NinError(f"{type(trainer).__name__} lacks {', '.join(missing)} of the Trainer contract (nin.train)")
    spec = trainer.spec
    if spec_for(recipe, spec) != spec:
        raise RecipeError(
            f"the recipe turns dropout off but {spec.name} was built with it; build the model from spec_for(recipe, spec)"
        )
    if dataset.num_classes != spec.num_classes:
        raise NinError(
            f"{dataset.name} has {dataset.num_classes} classes but {spec.name} outputs {spec.num_classes}; "
            f"build the spec with num_classes={dataset.num_classes}"
        )
    check_input(spec, dataset.x_train[:1])


def fit(
    trainer: Trainer,
    dataset,
    recipe: Recipe,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any], Trainer], None] | None = None,
    write: bool = True,
) -> list[dict[str, Any]]:
    """Train for ``recipe.epochs`` epochs on ``dataset`` (a ``nin.datasets.Dataset``), the same
    batches for every backend; return the metrics history, one dict per epoch.

    After each epoch it evaluates on the test set and writes, in ``out_dir``:
    ``metrics.jsonl`` (one JSON line per epoch: epoch, train_loss, train_acc, test_loss,
    test_acc, seconds and examples_per_s of the training pass, lr of the epoch's last step,
    world_size and rows_per_rank: the number of workers and the real rows each trained on),
    ``curves.png`` (where matplotlib is installed: ``nin-suite[progress]``; else a one-line
    note says it is skipped), and ``checkpoint.npz`` (see ``save_checkpoint``), each atomically.
    Then it calls ``on_epoch(record, trainer)``.

    ``resume=True`` continues from ``out_dir/checkpoint.npz`` after checking it comes from the
    same model, data set and recipe (the number of epochs may grow; the backend may differ,
    since the state is canonical).  Ctrl-C saves the state after the last completed epoch and
    raises ``TrainingInterrupted``.

    ``write=False`` writes nothing: the data-parallel workers other than rank 0
    (``nin.distributed``).

    ``progress=True`` reports on stderr: a progress bar per epoch while stderr is a terminal
    and tqdm is installed, and one line per epoch either way, so a log file gets one line per
    epoch and no bar."""
    _check_fit(trainer, dataset, recipe)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path = out / CHECKPOINT, out / METRICS
    meta = _run_meta(trainer, recipe, dataset.name)
    if resume:
        ckpt = load_checkpoint(ckpt_path)
        _check_resume(ckpt_path, ckpt.meta, meta, trainer.spec)
        trainer.load_state(ckpt.state)
        done, history = ckpt.epoch, ckpt.meta["history"]
    elif ckpt_path.exists():
        raise CheckpointError(
            f"{out} already holds a checkpoint; continue it with --resume (resume=True), or choose another output folder"
        )
    else:
        done, history = 0, []
    if write:
        _write_metrics(metrics_path, history)
    last_state = trainer.export_state()
    n_train = len(dataset.y_train)
    steps_per_epoch = math.ceil(n_train / recipe.batch_size)
    title = f"{meta['backend']} · {meta['model']} · {dataset.name}"
    tqdm = getattr(optional_module("tqdm"), "tqdm", None) if progress and sys.stderr.isatty() else None
    curves = write and optional_module("matplotlib") is not None
    if write and not curves:
        print(f"{CURVES} skipped: matplotlib is not installed ({install_hint('progress')} draws it)", file=sys.stderr)
    try:
        for epoch in range(done, recipe.epochs):
            trainer.begin_epoch(epoch)
            bar = (
                tqdm(total=n_train, desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="ex", leave=False) if tqdm else None
            )
            loss_sum, correct, seen, lr = 0.0, 0, 0, recipe.lr
            start = time.perf_counter()
            train = batches(
                dataset.x_train, dataset.y_train, recipe.batch_size, shuffle=True, seed=recipe.seed, epoch=epoch
            )
            for step, (x, y) in enumerate(train):
                lr = lr_at(recipe, epoch, step, steps_per_epoch)
                loss, right = trainer.step(x, y, lr)
                loss_sum, correct, seen = loss_sum + loss * len(y), correct + right, seen + len(y)
                if bar is not None:
                    bar.update(len(y))
                    rate = seen / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", ex_s=f"{rate:.0f}")
            seconds = time.perf_counter() - start
            if bar is not None:
                bar.close()
            test_loss, test_correct = _evaluate(trainer, dataset, recipe.batch_size)
            n_test = len(dataset.y_test)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / seen,
                "train_acc": correct / seen,
                "test_loss": test_loss / n_test,
                "test_acc": test_correct / n_test,
                "seconds": seconds,
                "lr": lr,
                "examples_per_s": seen / seconds,
                # the job's workers: nin.distributed.DataParallel.epoch_record, or this one process
                **(
                    trainer.epoch_record()
                    if hasattr(trainer, "epoch_record")
                    else {"world_size": 1, "rows_per_rank": [seen]}
                ),
            }
            history.append(record)
            last_state, done = trainer.export_state(), epoch + 1
            if write:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                if curves:
                    write_curves(history, out / CURVES, title)
                save_checkpoint(ckpt_path, last_state, {**meta, "epoch": done, "history": history})
            if progress:
                (tqdm.write if tqdm else print)(_epoch_line(record, recipe.epochs), file=sys.stderr)
            if on_epoch is not None:
                on_epoch(record, trainer)
    except KeyboardInterrupt:
        if not write:
            raise
        save_checkpoint(ckpt_path, last_state, {**meta, "epoch": done, "history": history[:done]})
        raise TrainingInterrupted(done, ckpt_path) from None
    return history


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    """The one line ``fit`` reports per epoch."""
    return (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}"
        f" · test loss {record['test_loss']:.4f} acc {record['test_acc']:.4f}"
        f" · {record['examples_per_s']:.0f} ex/s"
    )


def _evaluate(trainer: Trainer, dataset, batch_size: int) -> tuple[float, int]:
    loss_sum, correct = 0.0, 0
    for x, y in batches(dataset.x_test, dataset.y_test, batch_size, shuffle=False):
        loss, right = trainer.evaluate(x, y)
        loss_sum, correct = loss_sum + loss, correct + right
    return loss_sum, correct


# -- many seeds ------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` → 0, 1, …, 9; ``"3"`` → 3."""
    first, dash, last = text.partition("-")
    try:
        lo, hi = int(first), int(last) if dash else int(first)
    except ValueError:
        raise RecipeError(f"seeds must be A-B or one number, e.g. 0-9; got {text!r}") from None
    if lo < 0 or hi < lo:
        raise RecipeError(f"seeds A-B need 0 ≤ A ≤ B; got {text!r}")
    return list(range(lo, hi + 1))


def stuck_threshold(num_classes: int) -> float:
    """A run whose final test accuracy is at most 1.5× chance counts as stuck."""
    return 1.5 / num_classes


# A run that is not stuck but ends this far below the median of its seeds counts as degraded:
# typically some class channels of the last (ReLU) block died and those classes are never predicted.
DEGRADED_MARGIN = 0.05


def run_seeds(
    backend: str,
    spec: NiNSpec,
    dataset,
    recipe: Recipe,
    seeds: Iterable[int],
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train one run per seed, in ``out_dir/seed{S}``, one after another; write and return a
    summary: final test accuracy per seed, its mean, standard deviation, median and minimum,
    how many runs got stuck (``stuck_threshold``) and how many, not stuck, ended more than
    ``DEGRADED_MARGIN`` below the median (degraded).  With ``resume`` a seed continues where its folder
    holds a checkpoint and starts where it holds none."""
    out = Path(out_dir)
    seeds = list(seeds)
    if resume and not any((out / f"seed{s}" / CHECKPOINT).exists() for s in seeds):
        raise CheckpointError(f"no checkpoint in {out}/seed*/: nothing to resume; start without --resume")
    finals = []
    for seed in seeds:
        run = recipe.replace(seed=seed)
        folder = out / f"seed{seed}"
        if progress:
            print(f"seed {seed}: {folder}", flush=True)
        history = fit(
            get_trainer(backend, spec, run, device),
            dataset,
            run,
            folder,
            resume and (folder / CHECKPOINT).exists(),
            progress,
        )
        finals.append(history[-1]["test_acc"])
    threshold = stuck_threshold(spec.num_classes)
    median = float(np.median(finals))
    summary = {
        "backend": backend,
        "model": spec.name,
        "data": dataset.name,
        "recipe": recipe.to_json(),
        "seeds": seeds,
        "final_test_acc": finals,
        "mean_test_acc": float(np.mean(finals)),
        "std_test_acc": float(np.std(finals)),
        "stuck_threshold": threshold,
        "median_test_acc": median,
        "min_test_acc": float(min(finals)),
        "stuck": sum(acc <= threshold for acc in finals),
        "degraded_margin": DEGRADED_MARGIN,
        "degraded": sum(threshold < acc < median - DEGRADED_MARGIN for acc in finals),
    }
    atomic_write(out / SUMMARY, lambda f: f.write(json.dumps(summary, indent=2).encode()))
    return summary
