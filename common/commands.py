"""What the command modules share (``nin.summary``, ``nin.compare``, ``nin.train_command``,
...; each gives ``add_arguments(parser)`` and ``run(args)``, and ``nin.cli`` builds the parser
from them): the checks of names and sizes given on a command line, made before anything is
imported or run, and the writing and verdict of a command's result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .errors import NinError

EXIT_STATUS = (
    "Exit status 0 when every backend that ran holds every property; 1 on any mismatch or error, when a backend "
    "named by --backends cannot run, and when nothing could be checked at all (no backend installed); 2 on bad "
    "input."
)


def check_backends(names: list[str] | None, extra: tuple[str, ...] = (), runtimes: bool = False) -> None:
    """Reject unknown backend names before anything is imported or run; ``runtimes`` admits the
    inference-only runtimes (onnxruntime) too, for the commands that only run forward passes."""
    from .frameworks import backend_record, broken_backends, list_backends, list_runtimes

    known = [*extra, *(list_runtimes() if runtimes else list_backends())]
    for name in names or []:
        if name not in known:
            if name in broken_backends():
                backend_record(name)  # an outside backend that cannot be read: the error says why
            raise NinError(f"unknown backend {name!r}; known backends: {', '.join(known)}")


def check_models(names: list[str]) -> None:
    """Reject unknown model names (``get_spec`` names the known ones)."""
    from .zoo import get_spec

    for name in names:
        get_spec(name)


def check_input_size(spec, sizes: list[int]) -> None:
    """``--input-size`` gives one number per spatial dimension of ``spec``."""
    if len(sizes) != spec.ndim:
        raise NinError(f"{spec.name} is {spec.ndim}-D: --input-size needs {spec.ndim} numbers; got {sizes}")


def name_list(text: str) -> list[str]:
    """A comma list of names, e.g. ``torch,jax``."""
    return [name for name in text.split(",") if name]


def save(
    result: dict,
    json_path: str | None,
    markdown_path: str | None = None,
    markdown: Callable[[dict], str] | None = None,
) -> None:
    """Write a command's result as JSON and, where it has one, as a Markdown table."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(markdown(result) + "\n")


def verdict(args: argparse.Namespace, result: dict) -> int:
    """Exit status 0 for a run that passed; 1, with one line per reason on stderr, for one that did not."""
    for line in result["failures"]:
        print(f"nin {args.command}: FAILED: {line}", file=sys.stderr)
    return 0 if result["passed"] else 1
