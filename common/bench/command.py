"""The ``nin bench`` command: its options, a run configured by one ``BenchConfig``, or
(``--agree``) the agreement of two saved runs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import NinError

if TYPE_CHECKING:
    from .records import BenchResult
    from .rounds import BenchConfig

HELP = "forward and training-step speed side by side, as a share of this machine's peak"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..files import output_file
    from ..frameworks import PRECISIONS
    from .rounds import ROUNDS
    from .workers import GPU_PEAK_SIZES, PEAK_SIZES

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
    return p


def config_from(args: argparse.Namespace) -> BenchConfig:
    """The run ``args`` asks for, its names and sizes checked; backends default to every one
    installed here."""
    from ..commands import check_backends, check_input_size
    from ..frameworks import available_backends
    from ..zoo import get_spec
    from .rounds import BenchConfig

    check_backends(args.backends)
    for model in args.models:
        spec = get_spec(model)
        if args.input_size:
            check_input_size(spec, args.input_size)
    return BenchConfig(
        backends=tuple(args.backends or available_backends()),
        models=tuple(args.models),
        batch_sizes=tuple(args.batch_sizes),
        input_size=tuple(args.input_size) if args.input_size else None,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        rounds=args.rounds,
        warmup=args.warmup,
        repeats=args.repeats,
        peer=not args.no_peer,
        peak_sizes=tuple(args.peak_sizes) if args.peak_sizes else None,
    )


def run(args: argparse.Namespace) -> int:
    from ..commands import save
    from ..extras import require_extra
    from .report import agreement_markdown, bench_text, load_result
    from .rounds import agreement, run_bench

    if args.agree:
        result = agreement(*(load_result(path) for path in args.agree))
        if not result.rows:
            raise NinError(f"{args.agree[0]} and {args.agree[1]} share no measured case (backend, model, batch size)")
        print(agreement_markdown(result), end="")
        save(result.to_json(), args.json)
        return 0 if result.agree else 1
    config = config_from(args)
    if args.plot:
        require_extra("pictures", "--plot")
    result = run_bench(
        config,
        log=lambda line: print(line, file=sys.stderr),
        on_round=lambda partial: _save(partial, args),
    )
    print(bench_text(result))
    _save(result, args)
    if args.plot:
        from .plot import bench_plot

        bench_plot(result, args.plot)
    return 0 if all(r.error is None for r in result.records) else 1


def _save(result: BenchResult, args: argparse.Namespace) -> None:
    """The run so far in ``--json`` and ``--markdown``, where they are given."""
    from ..commands import save
    from .report import bench_markdown

    save(result.to_json(), args.json, args.markdown, lambda _: bench_markdown(result))
