"""``nin backends``: every backend the registry knows (``nin.frameworks``), from this
repository or from an installed distribution's ``nin.backends`` entry point, read from its
record without importing its framework: what it needs and has, and whether it runs here.

``nin backends --extra all`` prints, comma-separated, the backends that
``pip install 'nin-suite[all]'`` installs: the Makefile requires exactly those in each
environment (``NIN_REQUIRE_BACKENDS``).
"""

from __future__ import annotations

import argparse

from .tables import text_table

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


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--extra",
        nargs="+",
        metavar="EXTRA",
        help="print only the backends these extras of nin-suite install, comma-separated (e.g. --extra all)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the table, or with ``--extra`` the backends those extras install."""
    from .frameworks import backends_of_extras

    if args.extra:
        print(",".join(backends_of_extras(args.extra)))
        return 0
    print(text_table(HEADER, rows()))
    return 0
