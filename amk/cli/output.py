"""What commands print: tables sized to their content (rich), and notes on stderr.

On a terminal a table is drawn with a header rule and wraps long cells to the terminal's width; in a
pipe or a file it is plain text: columns two spaces apart, as wide as their widest cell, no trailing
spaces and no colour, so ``amk plugins | grep cpu`` and scripts read it. rich is imported here, when a
table is printed, not when ``amk`` starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import click


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[str] = (),
          title: str | None = None, err: bool = False) -> None:
    """Print ``rows`` (cells: str or numbers, None prints as empty) under the headers ``columns``;
    the columns named in ``right`` are right-aligned (numbers)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    stream = click.get_text_stream("stderr" if err else "stdout")
    terminal = _is_terminal(stream)
    grid = Table(box=box.SIMPLE_HEAD if terminal else None, show_edge=False, pad_edge=False, padding=(0, 1),
                 collapse_padding=terminal,
                 title=title if terminal else None, title_justify="left", header_style="bold" if terminal else "")
    for name in columns:
        grid.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console = Console(file=stream, width=None if terminal else 100_000, markup=False, highlight=False,
                      emoji=False, soft_wrap=False, force_terminal=terminal or None, no_color=not terminal)
    if terminal:
        console.print(grid)
        return
    if title:
        click.echo(title, err=err)
    with console.capture() as captured:
        console.print(grid)
    for line in captured.get().splitlines():
        if line.strip():
            click.echo(line.rstrip(), err=err)


def note(message: str) -> None:
    """One ``amk: note: ...`` line on stderr: what a command left out or chose for the user."""
    click.echo(f"amk: note: {message}", err=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 seed``, ``5 seeds`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def stdout_is_terminal() -> bool:
    return _is_terminal(sys.stdout)
