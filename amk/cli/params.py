"""Command-line value types that refuse what Python's own would let through: ``nan``, ``inf``, negatives."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click


class FiniteFloat(click.ParamType):
    """A finite number (``nan`` and ``inf`` are refused: click's FLOAT and FloatRange accept them), at least
    ``minimum`` when given."""

    name = "float"

    def __init__(self, minimum: float | None = None) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number.", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number.", param, ctx)
        if self.minimum is not None and number < self.minimum:
            self.fail(f"{value!r} is below {self.minimum:g}.", param, ctx)
        return number


FINITE = FiniteFloat()
FINITE_NON_NEGATIVE = FiniteFloat(0.0)


class StoreUrl(click.ParamType):
    """A store URL (``jsonl:PATH``, ``sqlite:PATH``, ``postgresql://...``, a plugin's) whose scheme names an
    installed store and whose form that store accepts; checked when the command line is read (exit 2),
    nothing is opened."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from amk.core.config import parse_store_url
        from amk.core.errors import AmkError
        from amk.core.plugins import get_registry

        try:
            parse_store_url(value, get_registry())
        except AmkError as exc:
            self.fail(str(exc), param, ctx)
        return value


STORE_URL = StoreUrl()


class OutputFile(click.ParamType):
    """A file to write (a Path). ``-`` is stdout where the command can write its output there (returned as
    None, what the option's absence means), else refused (exit 2): it would make a file named ``-``."""

    name = "file"

    def __init__(self, stdout_ok: bool) -> None:
        self.stdout_ok = stdout_ok
        self.path = click.Path(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | None:
        if str(value) == "-":
            if self.stdout_ok:
                return None
            self.fail("'-' (stdout) is not allowed here: stdout carries the command's own output; "
                      "give a file name (./- for a file named '-').", param, ctx)
        return self.path.convert(value, param, ctx)


OUTPUT_OR_STDOUT = OutputFile(stdout_ok=True)
OUTPUT_FILE = OutputFile(stdout_ok=False)
