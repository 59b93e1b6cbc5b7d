"""Readers of tuning data amk can import: its own JSONL corpora (every schema version) and Kernel Tuner caches.

``detect_format(path)`` names the format of a file; ``read_file(path, fmt)`` yields an
:class:`ImportItem` per entry: a record, or a problem that says where and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs

from amk.core.errors import ImportFormatError
from amk.core.records import Record
from amk.core.store import CorpusProblem

FORMATS: tuple[str, ...] = ("amk-jsonl", "kernel-tuner")


@attrs.frozen
class ImportItem:
    """One entry of an imported file: exactly one of ``record`` and ``problem`` is set."""

    record: Record | None = None
    problem: CorpusProblem | None = None


def detect_format(path: Path) -> str:
    """The format of ``path``, from its first bytes: a JSON object with ``cache`` is Kernel Tuner's."""
    from amk.importers.kernel_tuner import looks_like_kernel_tuner

    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file; check the path.")
    if looks_like_kernel_tuner(path):
        return "kernel-tuner"
    head = _first_line(path)
    if head.startswith("{"):
        return "amk-jsonl"
    raise ImportFormatError(
        f"{path}: not an amk JSONL corpus nor a Kernel Tuner cache file; pass --format to force one of {list(FORMATS)}."
    )


def _first_line(path: Path) -> str:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot be read ({exc}); check the file.") from None
    return ""


def read_file(path: Path, fmt: str | None = None, *, device: str | None = None) -> Iterator[ImportItem]:
    """Every entry of ``path`` in format ``fmt`` (detected when None); ``device`` overrides the file's."""
    fmt = fmt or detect_format(path)
    if fmt == "amk-jsonl":
        from amk.importers.amk_jsonl import read_amk_jsonl

        return read_amk_jsonl(path, device=device)
    if fmt == "kernel-tuner":
        from amk.importers.kernel_tuner import read_kernel_tuner

        return read_kernel_tuner(path, device=device)
    raise ImportFormatError(f"unknown import format {fmt!r}; formats are {list(FORMATS)}.")
