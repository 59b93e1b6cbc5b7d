"""What commands print: tables sized to their content, and notes on stderr.

On a terminal a table is drawn by rich with a header rule, long cells wrapped to the terminal's width; in a
pipe or a file it is plain text: columns two spaces apart, as wide as their widest cell, no trailing
spaces and no colour, so ``amk plugins | grep cpu`` and scripts read it. rich is imported only to draw on
a terminal, never when ``amk`` starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import click

from amk.io.display import shown


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[str] = (),
          title: str | None = None, err: bool = False) -> None:
    """Print ``rows`` (cells: str or numbers, None prints as empty) under the headers ``columns``;
    the columns named in ``right`` are right-aligned (numbers). Every cell and the title are printed as
    :func:`amk.io.display.shown` makes them: passwords hidden, control characters escaped."""
    stream = sys.stderr if err else sys.stdout
    cells = [["" if cell is None else shown(cell) for cell in row] for row in rows]
    title = None if title is None else shown(title)
    if _is_terminal(stream):
        _rich_table(stream, columns, cells, right, title)
        return
    # Plain text needs no layout engine: each column as wide as its widest cell (rich is not imported, so
    # `amk plugins | ...` starts as fast as it can).
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    if title:
        click.echo(title, err=err)
    for row in [list(columns), *cells]:
        line = "  ".join(cell.rjust(w) if name in right else cell.ljust(w)
                         for cell, w, name in zip(row, widths, columns))
        click.echo(line.rstrip(), err=err)


def _rich_table(stream: TextIO, columns: Sequence[str], cells: list[list[str]], right: Sequence[str],
                title: str | None) -> None:
    """The table drawn by rich on a terminal: a header rule, long cells wrapped to the terminal's width."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True,
                 title=title, title_justify="left", header_style="bold")
    for name in columns:
        grid.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in cells:
        grid.add_row(*(Text(cell) for cell in row))
    Console(file=stream, markup=False, highlight=False, emoji=False).print(grid)


def note(message: str) -> None:
    """One ``amk: note: ...`` line on stderr: what a command left out or chose for the user."""
    click.echo(f"amk: note: {shown(message)}", err=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 seed``, ``5 seeds`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else many or word + 's'}"
