"""Progress of a long operation (a tune run, an import, a copy, an evaluation...), on stderr.

On a terminal: a rich progress bar with the count, the rate, the elapsed time, the time left and a
status (a tune run's incumbent). Not on a terminal (a log, CI, a pipe): one plain line per step, the
same figures as text. ``mode="off"`` (``amk -q``): nothing. rich is imported when a bar is drawn.

    with Progress("import A100.json", total=46_000, unit="records") as progress:
        for done in ...:
            progress.update(done, status="12 bad entries")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Self, TextIO, TypeVar

from amk.io.display import shown

T = TypeVar("T")

MODES = ("auto", "bar", "lines", "off")


def _format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _singular(unit: str) -> str:
    """``evaluations`` -> ``evaluation``, ``strategies`` -> ``strategy``."""
    if unit.endswith("ies"):
        return unit[:-3] + "y"
    return unit.removesuffix("s")


class Progress:
    """Progress of ``total`` steps (None: unknown, then no bar and no time left) of ``unit``.

    ``mode``: "auto" (a bar on a terminal, else lines), "bar", "lines" or "off". ``start`` is where a
    resumed operation begins. The rate and the time left count from the first ``update`` (set-up before
    it, such as reading the corpus, is not a step).
    """

    def __init__(self, label: str, total: int | None = None, *, unit: str = "steps", mode: str = "auto",
                 stream: TextIO | None = None, start: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r} must be one of {list(MODES)}")
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.label = shown(label)  # a file or store name: control characters escaped, passwords hidden
        self.total = total if total and total > 0 else None
        self.unit = unit
        self.done = start
        self._started = time.monotonic()
        self._rate_origin: tuple[float, int] | None = None  # (time, done) of the first update: rates count from it
        self._last_line: tuple[int, str] | None = None
        self._bar = None
        self._task = None
        if mode == "bar":
            self._open_bar()

    # -- drawing ---------------------------------------------------------------------------------
    def _open_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn(), TextColumn("{task.fields[status]}")]
        console = Console(file=self.stream, markup=False, highlight=False, emoji=False)
        self._bar = RichProgress(*columns, console=console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total, completed=self.done, rate="", status="")

    def _rate(self) -> float | None:
        if self._rate_origin is None:
            return None
        since, done = self._rate_origin
        elapsed, steps = time.monotonic() - since, self.done - done
        return steps / elapsed if elapsed > 0 and steps > 0 else None

    def _rate_text(self) -> str:
        rate = self._rate()
        if rate is None:
            return ""
        return f"{rate:,.1f} {self.unit}/s" if rate >= 1 else f"{1 / rate:,.1f} s per {_singular(self.unit)}"

    def _line(self, status: str) -> None:
        if self._last_line == (self.done, status):
            return
        self._last_line = (self.done, status)
        parts = [f"{self.done}/{self.total}" if self.total is not None else str(self.done), self.unit]
        figures = [self._rate_text(), f"elapsed {_format_duration(time.monotonic() - self._started)}"]
        rate = self._rate()
        if self.total is not None and rate:
            figures.append(f"left {_format_duration(max(0, self.total - self.done) / rate)}")
        text = f"{self.label}: {' '.join(parts)} ({', '.join(f for f in figures if f)})"
        if status:
            text += f"  {shown(status)}"
        self.stream.write(text + "\n")
        self.stream.flush()

    # -- the interface ---------------------------------------------------------------------------
    def update(self, done: int, status: str = "") -> None:
        """``done`` steps so far, and a short status (e.g. the incumbent)."""
        if self._rate_origin is None:
            self._rate_origin = (time.monotonic(), done)
        self.done = done
        if self.mode == "bar" and self._bar is not None:
            self._bar.update(self._task, completed=done, rate=self._rate_text(), status=shown(status))
        elif self.mode == "lines":
            self._line(status)

    def set_total(self, total: int | None) -> None:
        """The number of steps, once it is known (set before the first ``update`` to get a bar)."""
        self.total = total if total and total > 0 else None
        if self._bar is not None:
            self._bar.update(self._task, total=self.total)

    def report(self, done: int, total: int) -> None:
        """``update`` for a library function's ``progress(done, total)`` callback (``evaluate``, ``simulate``)."""
        if total != (self.total or 0):
            self.set_total(total)
        self.update(done)

    def counted(self, items: Iterable[T], every: int = 10_000, status: str = "") -> Iterator[T]:
        """``items`` as they are, counted: an update after each ``every`` of them (a step) and at the end."""
        n = self.done
        self.update(n, status)  # the start: rates count from here
        for n, item in enumerate(items, self.done + 1):
            yield item
            if n % every == 0:
                self.update(n, status)
        self.update(n, status)

    def advance(self, steps: int = 1, status: str = "") -> None:
        self.update(self.done + steps, status)

    def close(self) -> None:
        """Stop drawing (the bar stays on screen with its last figures)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
