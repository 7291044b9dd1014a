"""The ``nin train`` command: its options, and a run of one trainer (``nin.train``), of several
seeds, of one worker of a data-parallel job, or of the launcher of ``--workers N`` local workers
(``nin.distributed``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .errors import NinError
from .extras import require_extra
from .files import output_folder

HELP = "train with the shared recipe; metrics, curves and resumable checkpoints"

# the recipe's command-line options: flag -> Recipe field (an option left out keeps the default)
RECIPE_FLAGS = {
    "--epochs": "epochs",
    "--batch-size": "batch_size",
    "--lr": "lr",
    "--momentum": "momentum",
    "--weight-decay": "weight_decay",
    "--schedule": "schedule",
    "--warmup-epochs": "warmup_epochs",
    "--init": "init",
}


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .frameworks import list_backends
    from .train.recipe import SCHEDULES, Recipe
    from .weights import INITIALIZERS

    p.add_argument("--backend", required=True, help=f"numpy (the slow oracle) or one of: {', '.join(list_backends())}")
    p.add_argument("--model", default="nin_mnist", help="a zoo model (default nin_mnist)")
    p.add_argument(
        "--data",
        default="mnist5k",
        help="mnist5k | fashion-mnist:DIR | cifar10:DIR | volumes[:N] | synthetic[:CxHxW] (default mnist5k)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        type=output_folder,
        help="metrics.jsonl, curves.png, checkpoint.npz go here",
    )
    known = {"schedule": f" (of {', '.join(SCHEDULES)})", "init": f" (of {', '.join(INITIALIZERS)})"}
    for flag, field in RECIPE_FLAGS.items():
        default = getattr(Recipe, field)
        p.add_argument(flag, type=type(default), help=f"default {default}{known.get(field, '')}")
    p.add_argument(
        "--dropout",
        action=argparse.BooleanOptionalAction,
        help=f"the model's dropout layers on, or off (rate 0); default {'on' if Recipe.dropout else 'off'}",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help=f"default {Recipe.seed}")
    seeds.add_argument(
        "--seeds", metavar="A-B", help="one run per seed in DIR/seed{S}, then mean ± std, stuck and degraded runs"
    )
    p.add_argument(
        "--input-size", type=int, nargs="+", metavar="N", help="resize the data and build the model at this size"
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in DIR")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel: start N local worker processes on the framework's own engine (docs/distributed.md)",
    )
    p.add_argument("--coordinator", metavar="HOST:PORT", help="one worker of a multi-host job: rank 0's address")
    p.add_argument("--rank", type=int, metavar="R", help="one worker of a multi-host job: its rank, 0 … N-1")
    p.add_argument("--world-size", type=int, metavar="N", help="one worker of a multi-host job: the number of workers")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument(
        "--visualize-every",
        type=int,
        metavar="N",
        help="every N epochs, save feature GIFs and class maps in DIR/visualize",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from . import distributed
    from .commands import check_backends, check_input_size
    from .loaders import load_dataset
    from .train import loop
    from .train.recipe import Recipe
    from .zoo import get_spec

    check_backends([args.backend], extra=("numpy",))
    fields = (*RECIPE_FLAGS.values(), "dropout", "seed")
    recipe = Recipe(**{field: getattr(args, field) for field in fields if getattr(args, field) is not None})
    seeds = loop.parse_seeds(args.seeds) if args.seeds else None
    if args.visualize_every:
        require_extra("pictures", "--visualize-every")
    spec = get_spec(args.model)
    if args.input_size:
        check_input_size(spec, args.input_size)
    size = tuple(args.input_size) if args.input_size else spec.input_size
    dataset = load_dataset(args.data, input_size=size)
    spec = get_spec(args.model, in_channels=dataset.in_channels, num_classes=dataset.num_classes, input_size=size)
    progress = not args.no_progress
    if args.visualize_every and seeds is not None:
        raise NinError("--visualize-every watches one run; use it with --seed, not --seeds")
    one_run = seeds is None and not args.visualize_every
    cluster = distributed.plan(
        args.backend,
        recipe.batch_size,
        args.workers,
        args.rank,
        args.world_size,
        args.coordinator,
        args.device,
        one_run,
    )
    if cluster is not None:
        history = distributed.train_worker(
            args.backend, spec, dataset, recipe, args.out, cluster, args.resume, progress
        )
        if cluster.rank == 0:
            _report(args, spec, dataset, history, f"{cluster.world_size} workers")
        return 0
    if args.workers > 1:
        job = distributed.TrainJob(
            args.backend, args.model, args.data, size, spec.in_channels, spec.num_classes, recipe, args.out,
            args.resume, progress, args.device,
        )  # fmt: skip
        distributed.launch(job, args.workers)
        history = loop.load_checkpoint(Path(args.out) / loop.CHECKPOINT).meta["history"]
        _report(args, spec, dataset, history, f"{args.workers} workers")
        return 0
    try:
        if seeds is None:
            trainer = loop.get_trainer(args.backend, spec, recipe, args.device)
            on_epoch = _epoch_pictures(args, dataset) if args.visualize_every else None
            history = loop.fit(
                trainer, dataset, recipe, args.out, resume=args.resume, progress=progress, on_epoch=on_epoch
            )
            _report(args, spec, dataset, history)
            return 0
        summary = loop.run_seeds(
            args.backend, spec, dataset, recipe, seeds, args.out, args.resume, progress, args.device
        )
    except loop.TrainingInterrupted as e:
        command = shlex.join(["nin", *args.argv, *([] if args.resume else ["--resume"])])
        print(
            f"nin train: interrupted; the state after epoch {e.epoch} is saved in {e.checkpoint}. Resume with: {command}",
            file=sys.stderr,
        )
        return 130
    print(
        f"{args.backend} {spec.name} on {dataset.name}, seeds {args.seeds}: final test accuracy "
        f"{summary['mean_test_acc']:.4f} ± {summary['std_test_acc']:.4f} (median {summary['median_test_acc']:.4f}, "
        f"min {summary['min_test_acc']:.4f}); {summary['stuck']}/{len(seeds)} stuck (≤ {summary['stuck_threshold']:.3f}), "
        f"{summary['degraded']}/{len(seeds)} degraded (> {summary['degraded_margin']} below the median); "
        f"summary in {args.out}/summary.json"
    )
    return 0


def _report(args: argparse.Namespace, spec, dataset, history, workers: str = "") -> None:
    from .train.loop import CURVES

    last = history[-1]
    written = "metrics, curves and checkpoint" if (Path(args.out) / CURVES).exists() else "metrics and checkpoint"
    print(
        f"{args.backend} {spec.name} on {dataset.name}{f' ({workers})' if workers else ''}: test accuracy "
        f"{last['test_acc']:.4f} after {last['epoch']} epochs; {written} in {args.out}"
    )


def _epoch_pictures(args: argparse.Namespace, dataset):
    """An ``on_epoch`` hook for ``fit``: every N epochs, the feature maps, channel GIFs and
    class activation maps of the first test example, in DIR/visualize/epochNNN."""
    from .visualize import visualize

    sample = dataset.x_test[:1]

    def on_epoch(record, trainer) -> None:
        if record["epoch"] % args.visualize_every == 0:
            out = Path(args.out) / "visualize" / f"epoch{record['epoch']:03d}"
            note = f"epoch {record['epoch']}, test accuracy {record['test_acc']:.3f}"
            weights = trainer.export_state()["weights"]
            visualize(args.backend, trainer.spec, weights, sample, out, dataset.classes, note=note)

    return on_epoch
