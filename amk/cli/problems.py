"""How the CLI tells the user about entries a store or a file could not read: nothing is skipped silently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from amk.core.store import CorpusProblem

LIST_THEM = "run 'amk corpus validate' on the file to list them"


def echo_problems(problems: Sequence[CorpusProblem], limit: int | None = None) -> None:
    """Each problem as one ``WHERE: REASON`` line on stderr; past ``limit`` of them, one ``... and N more``."""
    for i, problem in enumerate(problems):
        if limit is not None and i >= limit:
            click.echo(f"... and {len(problems) - limit} more", err=True)
            break
        click.echo(f"{problem.where}: {problem.reason}", err=True)


def echo_unreadable(problems: Sequence[CorpusProblem], where: str | None = None) -> None:
    """How many entries a read left out and how to list them, in one line; nothing when there are none.

    With ``where``, the store a command read and went on without them: a note on stderr,
    ``amk: N unreadable entries in WHERE left out (...)``. Without: a line of the report the command
    prints on stdout (``amk corpus stats``), ``unreadable entries: N (...)``.
    """
    if not problems:
        return
    if where is None:
        click.echo(f"unreadable entries: {len(problems)} ({LIST_THEM})")
    else:
        click.echo(f"amk: {len(problems)} unreadable entries in {where} left out ({LIST_THEM})", err=True)
