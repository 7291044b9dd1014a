"""The loop that drives any backend's ``Trainer``: ``fit`` (epochs of the same seeded
batches for every backend, evaluation, metrics, curves, checkpoints, resume, Ctrl-C) and
``run_seeds`` (one run per seed and their summary).

    recipe = Recipe(epochs=10)
    trainer = get_trainer("torch", "nin_mnist", recipe)
    history = fit(trainer, load_dataset("mnist5k"), recipe, "runs/torch")
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..datasets import batches
from ..errors import NinError
from ..extras import install_hint, optional_module, require
from ..files import atomic_write
from ..shapes import check_input
from ..spec import NiNSpec, spec_json
from ..weights import Weights
from ..zoo import get_spec
from .checkpoint import CHECKPOINT, CheckpointError, check_resume, load_checkpoint, save_checkpoint
from .oracle import NumpyTrainer
from .recipe import Recipe, RecipeError, lr_at, spec_for

METRICS = "metrics.jsonl"
CURVES = "curves.png"
SUMMARY = "summary.json"


class TrainingInterrupted(NinError):
    """Ctrl-C during ``fit``: the state after the last completed epoch was saved first."""

    def __init__(self, epoch: int, checkpoint: Path):
        self.epoch, self.checkpoint = epoch, checkpoint
        super().__init__(
            f"interrupted; the state after epoch {epoch} is saved in {checkpoint}. "
            f"Resume with fit(..., resume=True) or `nin train ... --resume`"
        )


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


def get_trainer(backend: str, model: str | NiNSpec, recipe: Recipe, device: str = "cpu") -> Trainer:
    """A trainer for a zoo model name or a spec: ``"numpy"`` gives ``NumpyTrainer``; a
    framework backend builds its model from ``spec_for(recipe, spec)`` with the recipe's seed
    and initialiser and wraps it in ``nin.frameworks.<backend>.train.Trainer``."""
    spec = get_spec(model) if isinstance(model, str) else model
    if backend == "numpy":
        return NumpyTrainer(spec, recipe)
    from ..frameworks import backend_trains, get_backend, list_backends

    if not backend_trains(backend):
        raise NinError(
            f"the {backend} backend runs inference only and cannot train; train with numpy or one of: "
            f"{', '.join(list_backends())}"
        )
    adapter = get_backend(backend)
    return adapter.Trainer(adapter.build(spec_for(recipe, spec), recipe.seed, device=device, init=recipe.init), recipe)


def backend_name(trainer: Trainer) -> str:
    """``numpy`` for ``NumpyTrainer``, else the backend whose ``train`` module defines it."""
    from ..frameworks import backend_of

    name = backend_of(type(trainer).__module__)
    if name is not None:
        return name
    return "numpy" if isinstance(trainer, NumpyTrainer) else type(trainer).__name__


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
        check_resume(ckpt_path, ckpt.meta, meta, trainer.spec)
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
