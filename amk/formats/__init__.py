"""Other tools' files, in and out: the table of formats, and reading or writing a file in one of them.

A format is one module here with a detector ``(Source) -> bool`` that looks at the file's structure (its
JSON keys, never substrings near its top), a reader ``(Source, ImportOptions) -> Iterator[ImportItem]``
and, where amk writes it, a writer ``(records, out) -> int``, plus one row in :data:`FORMATS`. Modules
are imported when a format is used, so listing formats stays cheap for ``amk --help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from amk.core.errors import ExportError, ImportFormatError

if TYPE_CHECKING:  # kept out of the import so that listing formats (amk --help) stays cheap
    from amk.core.devices import Device
    from amk.core.records import Record
    from amk.core.store import CorpusProblem
    from amk.formats.source import Source


@attrs.frozen
class ImportNote:
    """Something a reader says about a file that is no fault (it was left open, where its device came from)."""

    where: str
    message: str


@attrs.frozen
class ImportItem:
    """One thing read from a file: exactly one of ``record``, ``problem`` (a bad entry) and ``note``."""

    record: Record | None = None
    problem: CorpusProblem | None = None
    note: ImportNote | None = None


@attrs.frozen
class ImportOptions:
    """What the command line adds to a file: its device, and for T4 results the kernel and its space."""

    device: str | None = None  # overrides (or supplies) the device the file names
    t1: Path | None = None  # a T1 input file: the kernel, problem size and search space of T4 results
    kernel: str | None = None  # or the kernel's name (T4 results without a T1 file)
    problem_size: Any = None  # and its problem size


@attrs.frozen
class Format:
    """One file format: its name on the command line and where its functions live ("module:function")."""

    name: str
    detect: str
    reader: str
    writer: str | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""

    def function(self, spec: str) -> Callable[..., Any]:
        module, _, name = spec.partition(":")
        return getattr(importlib.import_module(module), name)


# Detection tries the formats in this order; amk-jsonl first as it needs only the first line.
FORMATS: tuple[Format, ...] = (
    Format("amk-jsonl", "amk.formats.amk_jsonl:looks_like_amk_jsonl", "amk.formats.amk_jsonl:read_amk_jsonl",
           "amk.formats.amk_jsonl:write_amk_jsonl", aliases=("jsonl",),
           description="amk's own records, one JSON object per line, any schema version"),
    Format("kernel-tuner", "amk.formats.kernel_tuner:looks_like_kernel_tuner",
           "amk.formats.kernel_tuner:read_kernel_tuner_source", "amk.formats.kernel_tuner:write_kernel_tuner",
           description="a Kernel Tuner cache file (any version, open or torn)"),
    Format("t4", "amk.formats.t4:looks_like_t4", "amk.formats.t4:read_t4", "amk.formats.t4:write_t4",
           description="T4 results (the autotuning community's results format)"),
    Format("triton", "amk.formats.triton:looks_like_triton", "amk.formats.triton:read_triton",
           description="a Triton autotune cache file (*.autotune.json)"),
    Format("t1", "amk.formats.t1:looks_like_t1", "amk.formats.t1:read_t1",
           description="a T1 input file: a kernel and its search space, no measurements"),
)
FORMAT_NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)
EXPORT_NAMES: tuple[str, ...] = tuple(n for f in FORMATS if f.writer for n in (*f.aliases, f.name))


def format_named(name: str) -> Format:
    """The format called ``name`` (or one of its aliases); ImportFormatError naming the formats otherwise."""
    for fmt in FORMATS:
        if name == fmt.name or name in fmt.aliases:
            return fmt
    raise ImportFormatError(f"unknown format {name!r}; formats are {list(FORMAT_NAMES)}.")


def detect_format(source: Source | Path) -> str:
    """The name of the format of a file, from its structure; ImportFormatError when no format fits."""
    from amk.formats.source import Source

    source = source if isinstance(source, Source) else Source(source)
    path = source.path
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file; check the path.")
    head = source.head().lstrip(" \t\r\n\x00\ufeff")
    if not head.startswith("{"):
        shown = f"it starts with {head[:20].encode('unicode_escape').decode('ascii')!r}" if head else "it is empty"
        raise ImportFormatError(f"{path}: not a JSON file ({shown}); amk reads {', '.join(FORMAT_NAMES)} files.")
    for fmt in FORMATS:
        if fmt.function(fmt.detect)(source):
            return fmt.name
    document = source.document()
    if document.not_an_object:
        raise ImportFormatError(f"{path}: not a JSON object ({document.not_an_object}); amk reads "
                                f"{', '.join(FORMAT_NAMES)} files.")
    keys = ", ".join(sorted(document.fields)[:8]) or "none"
    raise ImportFormatError(f"{path}: a JSON object with the keys {keys} is in no format amk reads "
                            f"({', '.join(FORMAT_NAMES)}); pass --format to force one.")


def read_file(path: Path, fmt: str | None = None, *, device: str | None = None,
              options: ImportOptions | None = None) -> Iterator[ImportItem]:
    """Every entry of ``path`` in format ``fmt`` (detected when None); ``device`` overrides the file's.

    Raises ImportFormatError when the file as a whole cannot be read (no format fits, no device); a bad
    entry comes back as an item with a problem, a fact worth saying as an item with a note.
    """
    from amk.core.store import CorpusProblem
    from amk.formats.source import Source

    options = options or ImportOptions()
    if device is not None:
        options = attrs.evolve(options, device=device)
    source = Source(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file; check the path.")
    try:
        chosen = format_named(fmt or detect_format(source))
        yield from chosen.function(chosen.reader)(source, options)
    except ImportFormatError as exc:
        if not source.problems:
            raise
        raise ImportFormatError(f"{exc} ({'; '.join(reason for _, reason in source.problems)})") from None
    for where, reason in source.problems:
        yield ImportItem(problem=CorpusProblem(where, reason))


def write_records(records: Iterable[Record], out: TextIO, fmt: str) -> int:
    """Write ``records`` to the text stream ``out`` in format ``fmt``; returns how many entries were written."""
    chosen = format_named(fmt)
    if chosen.writer is None:
        raise ExportError(f"amk reads {chosen.name} files but does not write them; formats it writes: "
                          f"{list(EXPORT_NAMES)}.")
    return chosen.function(chosen.writer)(records, out)


def file_device(path: Path, named: Any, override: str | None, *, field: str = "device_name") -> Device:
    """The device of a file: ``override`` (``--device``) when given, else the name the file gives in
    ``field``. ImportFormatError naming the file and ``--device`` when neither names a device amk can
    read (empty, no letter or digit, a CPU architecture, more than one device)."""
    from amk.core.devices import resolve_device
    from amk.core.errors import ValidationError

    if override:
        try:
            return resolve_device(override)
        except ValidationError as exc:
            raise ImportFormatError(f"--device {override!r}: {exc}; give e.g. --device a100 or the full name "
                                    "'NVIDIA A100-PCIE-40GB'.") from None
    if not isinstance(named, str) or not named.strip():
        raise ImportFormatError(f"{path}: the file names no device (its {field} is {named!r}); pass --device NAME "
                                "(e.g. --device a100) to say which device it was measured on.")
    if "\ufffd" in named:
        raise ImportFormatError(f"{path}: its {field} {named!r} holds bytes that are not UTF-8; pass --device NAME "
                                "to say which device it was measured on.")
    try:
        return resolve_device(named)
    except ValidationError as exc:
        raise ImportFormatError(f"{path}: {exc}; pass --device NAME (e.g. --device a100) to say which device it "
                                "was measured on.") from None
