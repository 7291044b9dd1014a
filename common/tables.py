"""Plain-text and Markdown tables, shared by every command that prints results."""

from __future__ import annotations

from collections.abc import Sequence


def _cells(rows: Sequence[Sequence[object]]) -> list[list[str]]:
    return [["" if v is None else str(v) for v in row] for row in rows]


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A table aligned with spaces; columns whose index is in ``right`` are right-aligned."""
    cells = _cells([header, *rows])
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A Markdown table; columns whose index is in ``right`` are right-aligned.  A ``|`` inside a
    cell (``max|Δ|``) is escaped, so it does not end the cell."""
    cells = [[c.replace("|", "\\|") for c in row] for row in _cells([header, *rows])]
    align = ["---:" if i in right else "---" for i in range(len(header))]
    out = ["| " + " | ".join(cells[0]) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(out)
