"""A one-line progress bar on stderr, drawn only when stderr is a terminal (quiet in logs and pipes)."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, *, label: str = "tune", stream: TextIO | None = None,
                 enabled: bool | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled if enabled is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = max(total, 1)
        self.label = label
        self.width = width
        self._drawn = False

    def update(self, done: int, best_us: float | None, note: str = "") -> None:
        if not self.enabled:
            return
        filled = min(self.width, int(self.width * done / self.total))
        best = f"best {best_us:,.2f} us" if best_us is not None else "no passing config yet"
        line = f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {best} {note}"
        self.stream.write(line[:200].ljust(80))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
