"""The ``nin`` command: a thin front over the library.

nin summary MODEL [--input-size H W] [--num-classes K] [--backend NAME] [--json]
nin compare [MODEL] [--backends ...] [--device cpu|gpu] [--json F]
nin conformance [--backends ...] [--models ...] [--device cpu|gpu] [--precision float32|bf16|all]
                [--require-gpu LIST] [--json F] [--markdown F]
nin models
nin backends [--extra EXTRA ...]
nin train --backend NAME [--model MODEL] [--data DATA] --out DIR [--epochs N] [--seed S | --seeds A-B] [--resume] ...
          [--workers N | --coordinator HOST:PORT --rank R --world-size N]
nin visualize --model MODEL [--backend NAME] [--weights FILE|pretrained] [--input IMAGE | --sample N [--data DATA]]
          --out DIR [--normalize channel|shared] [--mp4]
nin export MODEL [--backend NAME] --weights FILE|pretrained --format onnx|torchscript|savedmodel|stablehlo|gluon --out PATH
nin bench [--backends ...] [--models ...] [--batch-sizes ...] [--device cpu|gpu] [--precision float32|bf16] [--json F] ...
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from .errors import NinError
from .extras import require_extra


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``nin CMD: error: ...`` and where to find the usage,
    the same shape as every other error of the command (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} -h)\n")


def _check_backends(names: list[str] | None, extra: tuple[str, ...] = (), runtimes: bool = False) -> None:
    """Reject unknown backend names before anything is imported or run; ``runtimes`` admits the
    inference-only runtimes (onnxruntime) too, for the commands that only run forward passes."""
    from .frameworks import backend_record, broken_backends, list_backends, list_runtimes

    known = [*extra, *(list_runtimes() if runtimes else list_backends())]
    for name in names or []:
        if name not in known:
            if name in broken_backends():
                backend_record(name)  # an outside backend that cannot be read: the error says why
            raise NinError(f"unknown backend {name!r}; known backends: {', '.join(known)}")


def _check_models(names: list[str]) -> None:
    """Reject unknown model names (``get_spec`` names the known ones)."""
    from .zoo import get_spec

    for name in names:
        get_spec(name)


def _check_input_size(spec, sizes: list[int]) -> None:
    if len(sizes) != spec.ndim:
        raise NinError(f"{spec.name} is {spec.ndim}-D: --input-size needs {spec.ndim} numbers; got {sizes}")


def _save(result: dict, json_path: str | None, markdown_path: str | None = None, markdown=None) -> None:
    """Write a command's result as JSON and, where it has one, as a Markdown table."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(markdown(result) + "\n")


def _summary(args) -> int:
    from .summary import backend_layer_table, summary_json, summary_text
    from .zoo import get_spec

    spec = get_spec(args.model, num_classes=args.num_classes, in_channels=args.in_channels)
    if args.input_size:
        _check_input_size(spec, args.input_size)
        spec = get_spec(
            args.model, num_classes=args.num_classes, in_channels=args.in_channels, input_size=tuple(args.input_size)
        )
    rows = backend_layer_table(spec, args.backend) if args.backend else None
    if args.json:
        print(json.dumps(summary_json(spec, rows)))
    else:
        print(summary_text(spec, rows, args.backend))
    return 0


def _models(args) -> int:
    from .shapes import mac_count, param_count
    from .tables import text_table
    from .zoo import get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        size = "×".join(map(str, (spec.in_channels, *spec.input_size)))
        rows.append(
            (name, size, spec.num_classes, f"{param_count(spec):,}", f"{mac_count(spec) / 1e6:,.1f} M", spec.source)
        )
    print(text_table(("model", "input", "classes", "params", "MACs", "source"), rows, right=(2, 3, 4)))
    return 0


def _compare(args) -> int:
    from .compare import compare, compare_text

    _check_models([args.model])
    _check_backends(args.backends, runtimes=True)
    result = compare(args.model, args.backends, batch_size=args.batch_size, repeats=args.repeats, device=args.device)
    print(compare_text(result))
    _save(result, args.json)
    return _verdict(args, result)


def _conformance(args) -> int:
    from .conformance import conformance_markdown, conformance_text, run_matrix

    _check_models(args.models or [])
    _check_backends(args.backends, runtimes=True)
    _check_backends(args.require_gpu, runtimes=True)
    if args.require_gpu and args.device != "gpu":
        raise NinError(f"--require-gpu {','.join(args.require_gpu)} needs --device gpu; got --device {args.device}")
    result = run_matrix(args.backends, args.models, args.device, args.precision, args.require_gpu)
    print(conformance_text(result))
    _save(result, args.json, args.markdown, conformance_markdown)
    return _verdict(args, result)


def _verdict(args, result: dict) -> int:
    """Exit status 0 for a run that passed; 1, with one line per reason on stderr, for one that did not."""
    for line in result["failures"]:
        print(f"nin {args.command}: FAILED: {line}", file=sys.stderr)
    return 0 if result["passed"] else 1


def _bench(args) -> int:
    from .bench import agreement, agreement_markdown, bench, bench_markdown, bench_plot, bench_text, load_result
    from .frameworks import available_backends
    from .zoo import get_spec

    if args.agree:
        result = agreement(*(load_result(path) for path in args.agree))
        if not result["rows"]:
            raise NinError(f"{args.agree[0]} and {args.agree[1]} share no measured case (backend, model, batch size)")
        print(agreement_markdown(result), end="")
        _save(result, args.json)
        return 0 if result["agree"] else 1
    _check_backends(args.backends)
    if args.plot:
        require_extra("pictures", "--plot")
    backends = args.backends or available_backends()
    for model in args.models:
        spec = get_spec(model)
        if args.input_size:
            _check_input_size(spec, args.input_size)
    result = bench(
        backends, args.models, args.batch_sizes, args.input_size, args.device, args.threads,
        args.warmup, args.repeats, not args.no_peer, args.precision, args.peak_sizes, args.rounds,
        log=lambda line: print(line, file=sys.stderr),
        on_round=lambda partial: _save(partial, args.json, args.markdown, bench_markdown),
    )  # fmt: skip
    print(bench_text(result))
    _save(result, args.json, args.markdown, bench_markdown)
    if args.plot:
        bench_plot(result, args.plot)
    return 0 if all("error" not in r for r in result["records"]) else 1


# the recipe's command-line options: flag -> Recipe field (an option left out keeps the default)
_RECIPE_FLAGS = {
    "--epochs": "epochs",
    "--batch-size": "batch_size",
    "--lr": "lr",
    "--momentum": "momentum",
    "--weight-decay": "weight_decay",
    "--schedule": "schedule",
    "--warmup-epochs": "warmup_epochs",
    "--init": "init",
}


def _train(args) -> int:
    from .distributed import start_heartbeat

    start_heartbeat()  # in a worker started by --workers N: first, so that its launcher hears it while it loads
    from .data import load_dataset
    from .train import Recipe, TrainingInterrupted, fit, get_trainer, parse_seeds, run_seeds
    from .zoo import get_spec

    _check_backends([args.backend], extra=("numpy",))
    fields = (*_RECIPE_FLAGS.values(), "dropout", "seed")
    given = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    recipe = Recipe(**given)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    if args.visualize_every:
        require_extra("pictures", "--visualize-every")
    spec = get_spec(args.model)
    if args.input_size:
        _check_input_size(spec, args.input_size)
    size = tuple(args.input_size) if args.input_size else spec.input_size
    dataset = load_dataset(args.data, input_size=size)
    spec = get_spec(args.model, in_channels=dataset.in_channels, num_classes=dataset.num_classes, input_size=size)
    progress = not args.no_progress
    if args.visualize_every and seeds is not None:
        raise NinError("--visualize-every watches one run; use it with --seed, not --seeds")
    cluster = _cluster(args, recipe, seeds)
    if cluster is not None:
        from .distributed import train_worker

        history = train_worker(args.backend, spec, dataset, recipe, args.out, cluster, args.resume, progress)
        if cluster.rank == 0:
            _report(args, spec, dataset, history, f"{cluster.world_size} workers")
        return 0
    if args.workers > 1:
        from .distributed import launch

        launch(_without_workers(args.argv), args.workers, recipe.batch_size, args.out)
        return 0
    try:
        if seeds is None:
            trainer = get_trainer(args.backend, spec, recipe, args.device)
            on_epoch = _epoch_pictures(args, dataset) if args.visualize_every else None
            history = fit(trainer, dataset, recipe, args.out, resume=args.resume, progress=progress, on_epoch=on_epoch)
            _report(args, spec, dataset, history)
            return 0
        summary = run_seeds(args.backend, spec, dataset, recipe, seeds, args.out, args.resume, progress, args.device)
    except TrainingInterrupted as e:
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


def _export(args) -> int:
    import numpy as np

    from . import reference
    from .conformance import max_rel_error, sample_batch
    from .export import export, exporter_backend, run_exported
    from .trained import resolve_weights
    from .zoo import get_spec

    spec = get_spec(args.model)
    owner = exporter_backend(args.format, args.backend)
    weights, note = resolve_weights(spec, args.weights)
    if weights is None:
        raise NinError(f"{note}: pass --weights FILE (.npz, .safetensors or a nin train checkpoint)")
    out = export(spec, weights, args.format, args.out, args.backend)
    x = sample_batch(spec, 2)
    got, want = run_exported(out, args.format, x), reference.forward(spec, weights, x)[0]
    writer = f"{owner} backend" if owner else "nin.onnx"
    print(f"wrote {out}: {spec.name} as {args.format} (by {writer}); {note}")
    print(
        f"reloaded and run on 2 random inputs: max|logits − NumPy oracle| = {float(np.max(np.abs(got - want))):.1e} "
        f"({max_rel_error(got, want):.1e}·max|ref|)"
    )
    return 0


def _report(args, spec, dataset, history, workers: str = "") -> None:
    from pathlib import Path

    from .train import CURVES

    last = history[-1]
    written = "metrics, curves and checkpoint" if (Path(args.out) / CURVES).exists() else "metrics and checkpoint"
    print(
        f"{args.backend} {spec.name} on {dataset.name}{f' ({workers})' if workers else ''}: test accuracy "
        f"{last['test_acc']:.4f} after {last['epoch']} epochs; {written} in {args.out}"
    )


def _cluster(args, recipe, seeds):
    """This process's place in a data-parallel job (flags, else torchrun's variables), or None;
    every check a launcher can make before a process starts."""
    from .distributed import check_port_free, check_split, cluster_from
    from .frameworks import backends_with_part, part_unavailable_reason

    cluster = cluster_from(args.rank, args.world_size, args.coordinator, args.device)
    if cluster is None and args.workers == 1:
        return None
    if args.workers < 1:
        raise NinError(f"--workers must be ≥ 1; got {args.workers}")
    if cluster is not None and args.workers > 1:
        raise NinError("--workers N starts N local workers itself; leave out --rank, --world-size and --coordinator")
    if args.backend == "numpy":
        having = ", ".join(backends_with_part("distributed"))
        raise NinError(f"the numpy backend trains in one process; use --workers with one of: {having}")
    if seeds is not None or args.visualize_every:
        raise NinError("data-parallel training runs one seed and no --visualize-every; use --seed")
    check_split(recipe.batch_size, cluster.world_size if cluster else args.workers)
    reason = part_unavailable_reason(args.backend, "distributed")  # the record lacks it, or a framework is missing
    if reason:
        raise NinError(reason)
    if cluster is not None and cluster.rank == 0 and args.rank is not None:
        check_port_free(cluster.host, cluster.port)
    return cluster


def _without_workers(argv: list[str]) -> list[str]:
    """``argv`` less ``--workers N`` (or ``--workers=N``): what each launched worker gets."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out[1:] if out and out[0] == "train" else out


def _epoch_pictures(args, dataset):
    """An ``on_epoch`` hook for ``fit``: every N epochs, the feature maps, channel GIFs and
    class activation maps of the first test example, in DIR/visualize/epochNNN."""
    from pathlib import Path

    from .visualize import visualize

    sample = dataset.x_test[:1]

    def on_epoch(record, trainer) -> None:
        if record["epoch"] % args.visualize_every == 0:
            out = Path(args.out) / "visualize" / f"epoch{record['epoch']:03d}"
            note = f"epoch {record['epoch']}, test accuracy {record['test_acc']:.3f}"
            weights = trainer.export_state()["weights"]
            visualize(args.backend, trainer.spec, weights, sample, out, dataset.classes, note=note)

    return on_epoch


_EXIT_STATUS = (
    "Exit status 0 when every backend that ran holds every property; 1 on any mismatch or error, when a backend "
    "named by --backends cannot run, and when nothing could be checked at all (no backend installed); 2 on bad "
    "input."
)


def _name_list(text: str) -> list[str]:
    """A comma list of names, e.g. ``torch,jax``."""
    return [name for name in text.split(",") if name]


def build_parser() -> argparse.ArgumentParser:
    """The ``nin`` command's parser.  Every path a command writes is checked while the command
    line is parsed (``nin.files.output_file`` / ``output_folder``), so an output that cannot be
    written is a one-line error before any work."""
    from .bench import GPU_PEAK_SIZES, PEAK_SIZES, ROUNDS
    from .files import output_file, output_folder
    from .frameworks import PRECISIONS, list_backends
    from .zoo import list_models

    parser = _Parser(
        prog="nin", description="Network in Network in four frameworks, each checked against one NumPy oracle."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="layer table of a zoo model: shapes, parameters, MACs")
    p.add_argument("model", help=f"one of: {', '.join(list_models())}")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N", help="spatial size, e.g. 96 96")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--backend", choices=list_backends(), help="read the table off this framework's live model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_summary)

    p = sub.add_parser("models", help="list the zoo")
    p.set_defaults(run=_models)

    from . import backends

    backends.add_arguments(sub.add_parser("backends", help=backends.HELP)).set_defaults(run=backends.run)

    p = sub.add_parser(
        "compare",
        help="one table, a row per backend, checked against the NumPy reference",
        description="One row per backend: parameter count, output, logits against the NumPy oracle, timings. "
        f"{_EXIT_STATUS}",
    )
    p.add_argument("model", nargs="?", default="nin_d2l")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--json", metavar="FILE", type=output_file)
    p.set_defaults(run=_compare)

    p = sub.add_parser(
        "conformance",
        help="backend × model matrix: params, every layer's shape and value, logits, gradients, K SGD steps",
        description="Every backend × model against the spec and the NumPy oracle: parameter count, every layer's "
        "shape and value, logits, gradients, and K SGD steps per trainer (tolerances: nin.conformance, "
        f"docs/conformance.md). {_EXIT_STATUS} With --device gpu a backend that sees no GPU is reported "
        "'no GPU visible' with the reason (CPU-only build, no driver, no CUDA plugin) and fails the run only "
        "when --backends or --require-gpu names it; a run where no backend sees a GPU checked nothing, and fails.",
    )
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "bf16", "all"),
        help="bf16: mixed precision against the oracle at the bf16 bounds (backends that have it: torch, jax); "
        "all: both (default float32)",
    )
    p.add_argument(
        "--require-gpu",
        type=_name_list,
        default=[],
        metavar="LIST",
        help="comma list, e.g. torch,jax: with --device gpu, fail (exit 1, saying why) when one of these sees no GPU",
    )
    p.add_argument("--json", metavar="FILE", type=output_file)
    p.add_argument("--markdown", metavar="FILE", type=output_file)
    p.set_defaults(run=_conformance)

    from .train import SCHEDULES, Recipe
    from .weights import INITIALIZERS

    p = sub.add_parser("train", help="train with the shared recipe; metrics, curves and resumable checkpoints")
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
    for flag, field in _RECIPE_FLAGS.items():
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
    p.set_defaults(run=_train)

    from . import visualize

    visualize.add_arguments(sub.add_parser("visualize", help=visualize.HELP)).set_defaults(run=visualize.run)

    from .export import formats
    from .frameworks import list_runtimes

    p = sub.add_parser("export", help="write a model with its weights as ONNX or a framework's deployment format")
    p.add_argument("model", help=f"one of: {', '.join(list_models())}")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="canonical weights (.npz, .safetensors, a nin train checkpoint) or 'pretrained' "
        "(default: the shipped weights where the model has them)",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=list(formats()),
        help="onnx: the framework-free graph (nin.onnx); "
        + "; ".join(f"{fmt}: the {name} backend's" for fmt, name in formats().items() if name),
    )
    p.add_argument("--backend", choices=list_runtimes(), help="the backend (must own --format; any for onnx)")
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        type=output_file,
        help="file (onnx, torchscript, stablehlo) or new folder",
    )
    p.set_defaults(run=_export)

    p = sub.add_parser("bench", help="forward and training-step speed side by side, as a share of this machine's peak")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--models", nargs="+", default=["nin_d2l"], metavar="NAME")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[32], metavar="B")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument(
        "--precision",
        default="float32",
        choices=PRECISIONS,
        help="bf16: mixed precision, float32 parameters and bfloat16 arithmetic (torch and jax)",
    )
    p.add_argument("--threads", type=int, help="threads for every framework (default: all cores)")
    p.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"interleaved rounds, every case once per round (default {ROUNDS})"
    )
    p.add_argument("--repeats", type=int, default=2, help="timed calls per case per round (their median counts)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per case per round")
    p.add_argument("--no-peer", action="store_true", help="skip the d2l book's code")
    p.add_argument(
        "--peak-sizes",
        type=int,
        nargs="+",
        metavar="N",
        help="matrix sizes of the GEMM probes that measure the peak (default: "
        f"{' '.join(map(str, PEAK_SIZES))} on the CPU, {' '.join(map(str, GPU_PEAK_SIZES))} on a GPU)",
    )
    p.add_argument("--json", metavar="FILE", type=output_file)
    p.add_argument("--markdown", metavar="FILE", type=output_file)
    p.add_argument("--plot", metavar="FILE", type=output_file, help="PNG bar chart")
    p.add_argument(
        "--agree",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="run nothing: say whether two --json runs agree (each ratio's median inside the other run's "
        "min–max); exit status 1 where one does not",
    )
    p.set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return args.run(args)
    except NinError as e:
        print(f"nin {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
