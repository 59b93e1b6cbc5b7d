"""amk JSONL corpora: read in any schema version (the original system's included), written in the current one."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import attrs

from amk.core.devices import resolve_device
from amk.core.errors import ImportFormatError, RecordError, ValidationError
from amk.core.inputs import parse_json
from amk.core.records import Record, record_from_dict, record_to_json
from amk.core.store import CorpusProblem
from amk.formats import ImportItem


def looks_like_amk_jsonl(path: Path) -> bool:
    """True when the first non-blank line of ``path`` starts a JSON object."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line.lstrip().startswith("{")
    except (OSError, EOFError) as exc:
        raise ImportFormatError(f"{path}: cannot be read ({exc}); check the file.") from None
    return False


def read_amk_jsonl(path: Path, *, device: str | None = None) -> Iterator[ImportItem]:
    """Each line upgraded to the current schema; bad lines come back as problems with their line number."""
    override = resolve_device(device) if device else None
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:  # within amk's input limits (size, nesting, integers, strings): amk.core.inputs
                data = parse_json(raw)
            except ValidationError as exc:
                yield ImportItem(problem=CorpusProblem(where, str(exc)))
                continue
            try:
                record = record_from_dict(data, where=where)
            except RecordError as exc:
                yield ImportItem(problem=CorpusProblem(where, str(exc).removeprefix(where + ": ")))
                continue
            provenance = record.provenance
            if provenance.source is None:
                provenance = attrs.evolve(provenance, source=where)
            record = attrs.evolve(record, provenance=provenance)
            if override is not None:
                record = attrs.evolve(record, device=override)
            yield ImportItem(record=record)


def write_amk_jsonl(records: Iterable[Record], out: TextIO) -> int:
    """amk JSONL in the current schema: one canonical record per line, what the jsonl store holds."""
    n = 0
    for record in records:
        out.write(record_to_json(record) + "\n")
        n += 1
    return n
