"""amk JSONL corpora: read in any schema version (the original system's included), written in the current one."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TextIO

import attrs

from amk.core.errors import ImportFormatError, RecordError
from amk.core.records import Record, record_from_dict, record_to_json
from amk.formats import ImportItem, ImportOptions, file_device
from amk.formats.source import Source
from amk.formats.values import problem


def _record_shaped(value: object) -> bool:
    """An amk record of any version: a ``schema_version`` (amk) or ``model`` and ``gpu`` (the original system)."""
    return isinstance(value, dict) and (isinstance(value.get("schema_version"), int)
                                        or ("model" in value and "gpu" in value))


def looks_like_amk_jsonl(source: Source) -> bool:
    """True when one of the first lines of the file (a damaged first line is passed over) is a whole JSON
    object shaped like an amk record, and the file is not one JSON document."""
    lines = [line for line in source.head().lstrip("\ufeff").splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) >= 60_000:
        return False  # one long line: a whole-file JSON document, not records
    for line in lines[:5]:
        try:
            if _record_shaped(json.loads(line)):
                return True
        except ValueError:
            continue
    return False


def read_amk_jsonl(source: Source, options: ImportOptions) -> Iterator[ImportItem]:
    """Each line upgraded to the current schema; bad lines come back as problems with their line number."""
    path = source.path
    override = file_device(path, None, options.device) if options.device else None
    try:
        for lineno, raw in source.lines():
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield problem(where, f"not valid JSON: {exc}")
                continue
            try:
                record = record_from_dict(data, where=where)
            except RecordError as exc:
                yield problem(where, str(exc).removeprefix(where + ": "))
                continue
            provenance = record.provenance
            if provenance.source is None:
                provenance = attrs.evolve(provenance, source=where)
            record = attrs.evolve(record, provenance=provenance)
            if override is not None:
                record = attrs.evolve(record, device=override)
            yield ImportItem(record=record)
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot be read ({exc}); check the file.") from None


def write_amk_jsonl(records: Iterable[Record], out: TextIO) -> int:
    """amk JSONL in the current schema: one canonical record per line, what the jsonl store holds."""
    n = 0
    for record in records:
        out.write(record_to_json(record) + "\n")
        n += 1
    return n
