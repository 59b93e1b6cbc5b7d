"""The ``jsonl`` store: one record per line, current schema, append-only; git-friendly and the default.

Appends take an exclusive OS file lock and write whole lines in one call, so concurrent writers from
several processes never interleave. Reading never stops at a bad line: each one is reported by
``problems()`` with its line number and the reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs

import amk
from amk.core.errors import RecordError, StoreError
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import Record, record_from_dict, record_to_json
from amk.core.store import CorpusProblem, Store


class JsonlStore(Store):
    name: ClassVar[str] = "jsonl"
    url_schemes: ClassVar[tuple[str, ...]] = ("jsonl",)

    @attrs.frozen
    class Options:
        path: str = ".amk/corpus.jsonl"
        fsync: bool = False  # fsync after every append: durable across power loss, slower

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self.path = Path(self.options.path)
        self._problems: list[CorpusProblem] = []

    @classmethod
    def options_from_url(cls, url: str) -> dict[str, Any]:
        path = url.split(":", 1)[1]
        if not path:
            raise StoreError(f"store URL {url!r} names no file; write it as jsonl:PATH.")
        return {"path": path}

    def describe(self) -> str:
        return f"jsonl:{self.path}"

    def append(self, records: Iterable[Record]) -> int:
        lines = [record_to_json(r) + "\n" for r in records]
        if not lines:
            return 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    f.seek(0, os.SEEK_END)
                    prefix = b"\n" if f.tell() > 0 and not self._ends_with_newline() else b""
                    f.write(prefix + "".join(lines).encode())
                    f.flush()
                    if self.options.fsync:
                        os.fsync(f.fileno())
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            raise StoreError(f"cannot append to {self.path}: {exc.strerror}; check the path and permissions.") from None
        return len(lines)

    def _ends_with_newline(self) -> bool:
        # A torn last line (a writer killed mid-write) must not swallow the next record.
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _scan(self) -> Iterator[Record]:
        self._problems = []
        if not self.path.exists():
            return
        try:
            f = self.path.open("rb")
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}; check the path and permissions.") from None
        with f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                where = f"{self.path}:{lineno}"
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    torn = " (torn last line: a writer was interrupted)" if not raw.endswith(b"\n") else ""
                    self._problems.append(CorpusProblem(where, f"not valid JSON{torn}: {exc}"))
                    continue
                try:
                    yield record_from_dict(data, where=where)
                except RecordError as exc:
                    self._problems.append(CorpusProblem(where, str(exc).removeprefix(where + ": ")))

    def migrate(self) -> str:
        """Rewrite the file in the current schema; unreadable lines are kept verbatim and reported."""
        if not self.path.exists():
            return f"{self.path}: no corpus yet, nothing to migrate"
        backup = self.path.with_name(f"{self.path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        tmp = self.path.with_name(self.path.name + ".migrating")
        upgraded = kept = 0
        with self.path.open("rb+") as src:
            fcntl.flock(src.fileno(), fcntl.LOCK_EX)
            try:
                original = src.read()
                lines = original.splitlines(keepends=True)
                with tmp.open("wb") as out:
                    for lineno, raw in enumerate(lines, 1):
                        if not raw.strip():
                            continue
                        try:
                            record = record_from_dict(json.loads(raw), where=f"{self.path}:{lineno}")
                        except (json.JSONDecodeError, UnicodeDecodeError, RecordError):
                            out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                            kept += 1
                            continue
                        out.write((record_to_json(record) + "\n").encode())
                        upgraded += 1
                    out.flush()
                    os.fsync(out.fileno())
                shutil.copy2(self.path, backup)
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(src.fileno(), fcntl.LOCK_UN)
        note = f"; {kept} unreadable lines kept as they were (see 'amk corpus validate')" if kept else ""
        return f"{self.path}: {upgraded} records rewritten in schema {SCHEMA_VERSION}, backup at {backup}{note}"

    def problems(self) -> list[CorpusProblem]:
        return list(self._problems)


@amk.hookimpl
def register_stores(register) -> None:
    register(JsonlStore)
