"""``nin models``: the zoo as one table (input, classes, parameters, MACs, source)."""

from __future__ import annotations

import argparse

HELP = "list the zoo"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return p


def run(args: argparse.Namespace) -> int:
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
