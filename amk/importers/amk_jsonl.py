"""Reader of amk JSONL corpora of any schema version, the original system's included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import attrs

from amk.core.devices import resolve_device
from amk.core.errors import RecordError
from amk.core.records import record_from_dict
from amk.core.store import CorpusProblem
from amk.importers import ImportItem


def read_amk_jsonl(path: Path, *, device: str | None = None) -> Iterator[ImportItem]:
    """Each line upgraded to the current schema; bad lines come back as problems with their line number."""
    override = resolve_device(device) if device else None
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield ImportItem(problem=CorpusProblem(where, f"not valid JSON: {exc}"))
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
