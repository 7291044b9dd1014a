"""The ``nin`` command: a thin front over the library.  Each command is one module that gives
``add_arguments(parser)`` and ``run(args) -> int`` (``COMMANDS``); this module only builds the
parser from them and dispatches.

nin summary MODEL [--input-size H W] [--num-classes K] [--backend NAME] [--format text|json]
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
import importlib
import sys

from .errors import NinError

# every command, in the order of ``nin -h``: its name -> the module that gives its ``HELP``,
# ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "summary": "summary",
    "models": "models",
    "backends": "backends",
    "compare": "compare",
    "conformance": "conformance",
    "train": "train_command",
    "visualize": "visualize",
    "export": "export",
    "bench": "bench.command",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``nin CMD: error: ...`` and where to find the usage,
    the same shape as every other error of the command (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``nin`` command's parser, one sub-parser per module of ``COMMANDS``.  Every path a
    command writes is checked while the command line is parsed (``nin.files.output_file`` /
    ``output_folder``), so an output that cannot be written is a one-line error before any work."""
    parser = _Parser(
        prog="nin", description="Network in Network in four frameworks, each checked against one NumPy oracle."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        module.add_arguments(sub.add_parser(name, help=module.HELP)).set_defaults(run=module.run)
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
