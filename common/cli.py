"""The ``nin`` command: a thin front over the library.

nin summary MODEL [--input-size H W] [--num-classes K] [--backend NAME] [--json]
nin compare [MODEL] [--backends ...] [--json F]
nin conformance [--backends ...] [--models ...] [--json F] [--markdown F]
nin models
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import NinError


def _summary(args) -> int:
    from .summary import backend_layer_table, summary_json, summary_text
    from .zoo import get_spec

    spec = get_spec(args.model, num_classes=args.num_classes, in_channels=args.in_channels)
    if args.input_size:
        if len(args.input_size) != spec.ndim:
            raise NinError(
                f"{spec.name} is {spec.ndim}-D: --input-size needs {spec.ndim} numbers; got {args.input_size}"
            )
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

    result = compare(args.model, args.backends, batch_size=args.batch_size, repeats=args.repeats)
    print(compare_text(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if all(r["status"] in ("ok", "unavailable") for r in result["rows"]) else 1


def _conformance(args) -> int:
    from .conformance import conformance_markdown, conformance_text, run_matrix

    result = run_matrix(args.backends, args.models)
    print(conformance_text(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(conformance_markdown(result) + "\n")
    return 0 if result["passed"] else 1


def build_parser() -> argparse.ArgumentParser:
    from .frameworks import list_backends
    from .zoo import list_models

    parser = argparse.ArgumentParser(prog="nin", description="Network in Network in four frameworks, proven identical.")
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

    p = sub.add_parser("compare", help="one table, a row per backend, checked against the NumPy reference")
    p.add_argument("model", nargs="?", default="nin_d2l")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", metavar="FILE")
    p.set_defaults(run=_compare)

    p = sub.add_parser("conformance", help="backend × model matrix: shapes, params, forward and gradient error")
    p.add_argument("--backends", nargs="+", default=None, metavar="NAME")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.set_defaults(run=_conformance)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
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
