"""Print rows as a table: a rich table on a terminal, plain aligned columns when piped (for grep, awk, cut)."""

from __future__ import annotations

from collections.abc import Sequence

import click

__all__ = ["print_table"]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print ``header`` and ``rows`` (cells already formatted as text)."""
    # rich is imported here so that the CLI starts without it.
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if console.is_terminal:
        table = Table(*header, header_style="bold")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for cells in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
