"""``nin backends``: every backend the registry knows (``nin.frameworks``), from this
repository or from an installed distribution's ``nin.backends`` entry point, read from its
record without importing its framework: what it needs and has, and whether it runs here.

``nin backends --extra all`` prints, comma-separated, the backends that
``pip install 'nin-suite[all]'`` installs: the Makefile requires exactly those in each
environment (``NIN_REQUIRE_BACKENDS``).  ``nin backends --markdown`` prints the records of this
repository's backends as the table in frameworks/README.md ("The records"), which
tests/test_registry.py checks against them.
"""

from __future__ import annotations

import argparse

from .tables import markdown_table, text_table

HELP = "the backends: what each needs and has, and whether it runs here"
HEADER = ("backend", "from", "trains", "precisions", "export formats", "optional parts", "here")


def rows() -> list[tuple[str, ...]]:
    """One row per backend, then one per outside backend that cannot be read."""
    from .frameworks import backend_distribution, backend_record, broken_backends, list_runtimes, unavailable_reason

    out = []
    for name in list_runtimes():
        record = backend_record(name)
        reason = unavailable_reason(name)
        out.append(
            (
                name,
                backend_distribution(name),
                "yes" if record.trains else "no (inference only)",
                ", ".join(record.precisions),
                ", ".join(record.export_formats) or "-",
                ", ".join(record.parts) or "-",
                "available" if reason is None else f"unavailable: {reason}",
            )
        )
    for name, why in broken_backends().items():
        out.append((name, "?", "-", "-", "-", "-", f"broken: {why}"))
    return out


RECORD_HEADER = (
    "backend",
    "needs",
    "extra",
    "trains",
    "precisions",
    "export formats",
    "thread variables",
    "NumPy",
    "GPU",
    "has",
    "lacks",
)


def records_markdown() -> str:
    """The records of this repository's backends, one row each: frameworks/README.md's table."""
    from .frameworks import DISTRIBUTION, backend_distribution, backend_record, list_runtimes

    def code(names) -> str:
        return ", ".join(f"`{name}`" for name in names) or "-"

    out = []
    for name in list_runtimes():
        if backend_distribution(name) != DISTRIBUTION:
            continue
        r = backend_record(name)
        parts = [f"{part} (+ {code(needs.modules)})" if needs.modules else part for part, needs in r.parts.items()]
        out.append(
            (
                name,
                code(r.requires),
                f"`[{r.extra}]`",
                "yes" if r.trains else "no",
                ", ".join(r.precisions),
                ", ".join(r.export_formats) or "-",
                code(r.thread_env),
                f"< {r.numpy_below}" if r.numpy_below else "any",
                "yes" if r.gpu_probe else "-",
                ", ".join(parts) or "-",
                "; ".join(f"{part}: {why}" for part, why in r.lacks.items()) or "-",
            )
        )
    return markdown_table(RECORD_HEADER, out)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--extra",
        nargs="+",
        metavar="EXTRA",
        help="print only the backends these extras of nin-suite install, comma-separated (e.g. --extra all)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print this repository's records as frameworks/README.md's table"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the table, or with ``--extra`` the backends those extras install, or with
    ``--markdown`` the records' table."""
    from .frameworks import backends_of_extras

    if args.extra:
        print(",".join(backends_of_extras(args.extra)))
    elif args.markdown:
        print(records_markdown())
    else:
        print(text_table(HEADER, rows()))
    return 0
