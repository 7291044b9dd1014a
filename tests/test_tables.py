"""nin.tables: the Markdown tables the commands write (`nin conformance --markdown`, `nin bench
--markdown`) and the website renders."""

from __future__ import annotations

import re

from nin.tables import markdown_table


def cells_of(line: str) -> list[str]:
    """A Markdown table row's cells, split at the pipes that are not escaped, unescaped."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def test_a_pipe_inside_a_cell_does_not_end_it():
    table = markdown_table(("backend", "fwd max|Δ|"), [("torch", "3.4e-06 |x|")], right=(1,))
    header, rule, row = table.splitlines()
    assert cells_of(header) == ["backend", "fwd max|Δ|"]
    assert cells_of(rule) == ["---", "---:"]
    assert cells_of(row) == ["torch", "3.4e-06 |x|"]
