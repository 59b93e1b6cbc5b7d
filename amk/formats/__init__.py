"""Other tools' files, in and out: the table of formats, and reading or writing a file in one of them.

A format is one module here with ``looks_like(path) -> bool`` (detection by structure), a reader
``(path, *, device) -> Iterator[ImportItem]`` and, where amk writes it, a writer ``(records, out) -> int``,
plus one row in :data:`FORMATS`. Modules are imported when a format is used, so listing formats stays
cheap for ``amk --help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from amk.core.errors import ExportError, ImportFormatError

if TYPE_CHECKING:  # kept out of the import so that listing formats (amk --help) stays cheap
    from amk.core.records import Record
    from amk.core.store import CorpusProblem


@attrs.frozen
class ImportItem:
    """One entry of an imported file: exactly one of ``record`` and ``problem`` is set."""

    record: Record | None = None
    problem: CorpusProblem | None = None


@attrs.frozen
class Format:
    """One file format: its name on the command line and where its functions live ("module:function")."""

    name: str
    detect: str
    reader: str
    writer: str | None = None
    aliases: tuple[str, ...] = ()

    def function(self, spec: str) -> Callable[..., Any]:
        module, _, name = spec.partition(":")
        return getattr(importlib.import_module(module), name)


# Detection tries the formats in this order: the most specific structure first.
FORMATS: tuple[Format, ...] = (
    Format("kernel-tuner", "amk.formats.kernel_tuner:looks_like_kernel_tuner",
           "amk.formats.kernel_tuner:read_kernel_tuner", "amk.formats.kernel_tuner:write_kernel_tuner"),
    Format("amk-jsonl", "amk.formats.amk_jsonl:looks_like_amk_jsonl", "amk.formats.amk_jsonl:read_amk_jsonl",
           "amk.formats.amk_jsonl:write_amk_jsonl", aliases=("jsonl",)),
)
FORMAT_NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)
EXPORT_NAMES: tuple[str, ...] = tuple(n for f in FORMATS if f.writer for n in (*f.aliases, f.name))


def format_named(name: str) -> Format:
    """The format called ``name`` (or one of its aliases); ImportFormatError naming the formats otherwise."""
    for fmt in FORMATS:
        if name == fmt.name or name in fmt.aliases:
            return fmt
    raise ImportFormatError(f"unknown format {name!r}; formats are {list(FORMAT_NAMES)}.")


def detect_format(path: Path) -> str:
    """The name of the format of ``path``, from its structure; ImportFormatError when no format fits."""
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file; check the path.")
    for fmt in FORMATS:
        if fmt.function(fmt.detect)(path):
            return fmt.name
    raise ImportFormatError(
        f"{path}: not in a format amk reads ({', '.join(FORMAT_NAMES)}); pass --format to force one."
    )


def read_file(path: Path, fmt: str | None = None, *, device: str | None = None) -> Iterator[ImportItem]:
    """Every entry of ``path`` in format ``fmt`` (detected when None); ``device`` overrides the file's."""
    chosen = format_named(fmt or detect_format(path))
    return chosen.function(chosen.reader)(path, device=device)


def write_records(records: Iterable[Record], out: TextIO, fmt: str) -> int:
    """Write ``records`` to the text stream ``out`` in format ``fmt``; returns how many entries were written."""
    chosen = format_named(fmt)
    if chosen.writer is None:
        raise ExportError(f"amk reads {chosen.name} files but does not write them; formats it writes: "
                          f"{list(EXPORT_NAMES)}.")
    return chosen.function(chosen.writer)(records, out)
