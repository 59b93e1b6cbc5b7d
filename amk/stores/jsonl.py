"""The ``jsonl`` store: one record per line, current schema, append-only; git-friendly and the default.

Appends take an exclusive OS file lock (``flock``) and write whole lines, so concurrent writers from
several processes never interleave; ``fsync=true`` also forces each append to disk before it returns.

A writer killed mid-write leaves a torn last line (no newline). Readers report it and read everything
before it; the next append, under the lock, moves the fragment to ``<file>.torn`` (so it is set aside,
never silently lost, and never glued to the next record) and goes on. Fragments in ``<file>.torn`` stay
reported by ``problems()`` until someone deletes that file. Malformed lines and records from a newer
schema are reported with their line numbers, counted in ``stats``, and left in the file untouched.

Repeated measurements of the same (workload, device, config, backend version) are separate lines, i.e.
samples; ``query``/``columns`` return each, and ``best_configs`` aggregates best-of (a config's fastest
PASS sample), as in :mod:`amk.core.store`.

Every read parses the whole file (about 30 us per record): fine to a few hundred thousand records; for
larger corpora use the ``sqlite`` store (``amk corpus copy jsonl:PATH sqlite:PATH``).
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
            data = "".join(lines).encode()
            while not self._append_locked(data):
                pass  # the file was replaced (migrate) while we waited for its lock: append to the new one
        except OSError as exc:
            raise StoreError(f"cannot append to {self.path}: {exc.strerror}; check the path and permissions.") from None
        return len(lines)

    def _append_locked(self, data: bytes) -> bool:
        """Append ``data`` under the lock; False when the path was replaced while waiting for the lock."""
        with self.path.open("ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    if os.stat(self.path).st_ino != os.fstat(f.fileno()).st_ino:
                        return False
                except FileNotFoundError:
                    return False
                self._set_aside_torn_tail(f)
                f.write(data)
                f.flush()
                if self.options.fsync:
                    os.fsync(f.fileno())
                return True
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @property
    def torn_path(self) -> Path:
        """Where torn last lines are set aside."""
        return self.path.with_name(self.path.name + ".torn")

    def _set_aside_torn_tail(self, f) -> None:
        """Under the lock: move a torn last line (a writer killed mid-write) to the side file."""
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        with self.path.open("rb") as r:
            r.seek(end - 1)
            if r.read(1) == b"\n":
                return
            # Find the start of the torn line: the byte after the last newline.
            pos, block = end, 1 << 16
            start = 0
            while pos > 0:
                step = min(block, pos)
                r.seek(pos - step)
                chunk = r.read(step)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    start = pos - step + cut + 1
                    break
                pos -= step
            r.seek(start)
            fragment = r.read(end - start)
        with self.torn_path.open("ab") as side:
            side.write(fragment + b"\n")
            side.flush()
            os.fsync(side.fileno())
        os.truncate(self.path, start)
        f.seek(0, os.SEEK_END)

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
                if not raw.endswith(b"\n"):
                    # A writer holds the lock while it writes whole lines, so a line without its newline
                    # is one being written now or left by a writer that was killed.
                    self._problems.append(CorpusProblem(
                        where, f"incomplete last line ({len(raw)} bytes without a newline: a writer was killed "
                               f"mid-write, or is still writing); the next append sets it aside in {self.torn_path}"))
                    continue
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    self._problems.append(CorpusProblem(where, f"not valid JSON: {exc}"))
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
                self._set_aside_torn_tail(src)
                src.seek(0)
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
        """Unreadable lines found by the last full read, and the torn lines set aside in ``<file>.torn``."""
        return list(self._problems) + self._torn_problems()

    def _torn_problems(self) -> list[CorpusProblem]:
        try:
            data = self.torn_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [CorpusProblem(str(self.torn_path), f"cannot be read: {exc.strerror}")]
        return [CorpusProblem(f"{self.torn_path}:{lineno}",
                              f"a torn line ({len(line)} bytes) set aside from {self.path} after a writer was "
                              "killed mid-write; its record is incomplete: re-measure it, then delete this file")
                for lineno, line in enumerate(data.split(b"\n"), 1) if line.strip()]


@amk.hookimpl
def register_stores(register) -> None:
    register(JsonlStore)
