"""Writers of records to files, one per export format: what ``amk corpus export --format NAME`` runs.

A format is a function ``(records, out) -> count`` that writes ``records`` to the text stream ``out``;
add one by adding it to :data:`EXPORT_FORMATS` (imports inside the function, so listing formats stays
cheap for ``amk --help``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from amk.core.records import Record

ExportWriter = Callable[[Iterable["Record"], TextIO], int]


def write_jsonl(records: Iterable[Record], out: TextIO) -> int:
    """amk JSONL in the current schema: one canonical record per line, what the jsonl store holds."""
    from amk.core.records import record_to_json

    n = 0
    for record in records:
        out.write(record_to_json(record) + "\n")
        n += 1
    return n


def write_kernel_tuner(records: Iterable[Record], out: TextIO) -> int:
    """One Kernel Tuner cache file (one kernel on one device; see :mod:`amk.exporters.kernel_tuner`)."""
    from amk.exporters.kernel_tuner import write_kernel_tuner as write

    return write(records, out)


EXPORT_FORMATS: dict[str, ExportWriter] = {"jsonl": write_jsonl, "kernel-tuner": write_kernel_tuner}
