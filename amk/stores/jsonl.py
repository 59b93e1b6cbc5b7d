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

Column reads go through the columns cache (:mod:`amk.stores.jsonl_columns`) and parse only the lines
appended since; a line amk wrote is turned into its columns without a ``Record`` (:mod:`amk.stores.
jsonl_fast`, about 13 us a line against 43 us through ``record_from_dict``; any other line still goes
through it). ``query`` parses every record; for corpora past a few hundred thousand records use the
``sqlite`` store (``amk corpus copy jsonl:PATH sqlite:PATH``).
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np

import amk
from amk.core.columns import KIND_CODES, VERDICT_CODES, ColumnsBuilder, CorpusColumns, config_key
from amk.core.errors import RecordError, StoreError
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import Record, record_from_dict, record_to_json
from amk.core.store import CorpusProblem, CorpusQuery, CorpusStats, Store, match_key
from amk.core.workload import Workload

if TYPE_CHECKING:
    from amk.stores.jsonl_columns import ColumnsRead
    from amk.stores.jsonl_fast import ColumnsRow


class JsonlStore(Store):
    name: ClassVar[str] = "jsonl"
    url_schemes: ClassVar[tuple[str, ...]] = ("jsonl",)

    @attrs.frozen
    class Options:
        path: str = ".amk/corpus.jsonl"
        fsync: bool = False  # fsync after every append: durable across power loss, slower
        columns_cache: bool = True  # keep <file>.columns.npz so training reads parse only new lines

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self.path = Path(self.options.path)
        self._problems: list[CorpusProblem] = []
        # The columns of the file as last read, by (inode, size, mtime): one command asks several times.
        self._columns_memo: tuple | None = None

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

    def _open_for_reading(self):
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}; check the path and permissions.") from None

    def _read_lines(self, f, start: int = 0, first_lineno: int = 1, *, rows: bool = False
                    ) -> Iterator[tuple[int, Record | ColumnsRow | CorpusProblem | None, int | None]]:
        """Each line from byte ``start``: (line number, its record or problem or None when blank, end offset).

        With ``rows``, a well-formed current-schema line gives its ``ColumnsRow`` instead of a Record (see
        :mod:`amk.stores.jsonl_fast`); every other line is read as without.
        """
        fast = None
        if rows:
            from amk.stores.jsonl_fast import FastRows

            fast = FastRows().row
        f.seek(start)
        offset = start
        for lineno, raw in enumerate(f, first_lineno):
            offset += len(raw)
            if fast is not None:  # first: a line with its newline, else no row
                row = fast(raw)
                if row is not None:
                    yield lineno, row, offset
                    continue
            where = f"{self.path}:{lineno}"
            if not raw.endswith(b"\n"):
                if raw.strip():
                    # A writer holds the lock while it writes whole lines, so a line without its newline
                    # is one being written now or left by a writer that was killed.
                    yield lineno, CorpusProblem(
                        where, f"incomplete last line ({len(raw)} bytes without a newline: a writer was killed "
                               f"mid-write, or is still writing); the next append sets it aside in {self.torn_path}"
                    ), None
                return
            if not raw.strip():
                yield lineno, None, offset
                continue
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield lineno, CorpusProblem(where, f"not valid JSON: {exc}"), offset
                continue
            try:
                yield lineno, record_from_dict(data, where=where), offset
            except RecordError as exc:
                yield lineno, CorpusProblem(where, str(exc).removeprefix(where + ": ")), offset

    def _scan(self) -> Iterator[Record]:
        self._problems = []
        if not self.path.exists():
            return
        with self._open_for_reading() as f:
            for _, item, _ in self._read_lines(f):
                if isinstance(item, CorpusProblem):
                    self._problems.append(item)
                elif item is not None:
                    yield item

    # -- columns, from the cache (see amk.stores.jsonl_columns) ----------------------------------------

    def _all_columns(self) -> CorpusColumns:
        if not self.options.columns_cache:
            return self._read_columns()
        return self._columns_read().columns

    def _read_columns(self) -> CorpusColumns:
        """The whole file's columns without the cache: what ``CorpusColumns.from_records(self._scan())`` gives."""
        from amk.stores.jsonl_columns import add_item

        self._problems = []
        builder = ColumnsBuilder()
        if self.path.exists():
            with self._open_for_reading() as f:
                for _, item, _ in self._read_lines(f, rows=True):
                    add_item(builder, self._problems, item)
        return builder.build()

    def _columns_read(self) -> ColumnsRead:
        """The whole file's columns and line offsets through the cache (the file as it is now)."""
        from amk.stores.jsonl_columns import cached_columns

        try:
            stat = os.stat(self.path)
            version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            version = None
        if self._columns_memo is not None and version is not None and self._columns_memo[0] == version:
            read = self._columns_memo[1]
        else:
            try:
                read = cached_columns(self.path, self._read_lines)
            except OSError as exc:
                raise StoreError(f"cannot read {self.path}: {exc.strerror}; check the path and permissions.") from None
            self._columns_memo = (version, read) if version is not None else None
        self._problems = list(read.problems)
        return read

    def known_ids(self, records: Mapping[str, Record], *,
                  identity: Callable[[Record], str] | None = None) -> set[str]:
        """Candidates from the columns cache (see ``Store.known_ids``); only their lines are re-read and hashed.

        The cache reads what was appended since it was written, so a record another process appended
        before the call is seen. Offsets hold for the file the cache read: if it was replaced since
        (``amk corpus migrate``), every record is read instead.
        """
        from amk.core.records import record_id

        identity = identity or record_id
        if not records or not self.options.columns_cache:
            return super().known_ids(records, identity=identity)

        read = self._columns_read()
        cols = read.columns
        wanted = {match_key(r) for r in records.values()}
        workload_keys = [w.key for w in cols.workloads]
        config_keys = [config_key(c) for c in cols.configs]
        near = np.ones(len(cols), dtype=bool)
        for part, labels, index in ((0, workload_keys, cols.workload_index), (1, cols.devices, cols.device_index),
                                    (2, config_keys, cols.config_index)):
            asked = {k[part] for k in wanted}
            near &= np.array([label in asked for label in labels], dtype=bool)[index]
        lines = []
        for row in np.flatnonzero(near).tolist():
            latency = float(cols.latency_us[row])
            key = (workload_keys[cols.workload_index[row]], cols.devices[cols.device_index[row]],
                   config_keys[cols.config_index[row]], VERDICT_CODES[cols.verdict[row]].value,
                   KIND_CODES[cols.kind[row]].value, None if np.isnan(latency) else latency)
            if key in wanted:
                lines.append(int(read.offsets[row]))
        found: set[str] = set()
        if not lines:
            return found
        with self._open_for_reading() as f:
            if os.fstat(f.fileno()).st_ino != read.inode:
                return super().known_ids(records, identity=identity)
            for offset in lines:
                f.seek(offset)
                try:
                    rid = identity(record_from_dict(json.loads(f.readline()), where=f"{self.path}@{offset}"))
                except (json.JSONDecodeError, UnicodeDecodeError, RecordError):
                    continue  # the cache read this line as a record: only a replaced file reads otherwise
                if rid in records:
                    found.add(rid)
        return found

    def columns(self, query: CorpusQuery | None = None) -> CorpusColumns:
        cols = self._all_columns()
        if query is None or query == CorpusQuery():
            return cols
        return cols.take(_query_mask(cols, query)).compact()

    def count(self, query: CorpusQuery | None = None) -> int:
        cols = self._all_columns()
        return int(_query_mask(cols, query or CorpusQuery()).sum())

    def workloads(self, device: str | None = None, workload_kind: str | None = None) -> list[Workload]:
        cols = self.columns(CorpusQuery(device=device, workload_kind=workload_kind))
        return sorted(cols.workloads, key=lambda w: w.key)

    def stats(self) -> CorpusStats:
        cols = self._all_columns()
        return stats_of_columns(cols, problems=len(self.problems()))

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


def _query_mask(cols: CorpusColumns, query: CorpusQuery) -> np.ndarray:
    """The rows of ``cols`` that ``query`` matches (the same rows as ``CorpusQuery.matches``)."""
    keep = cols.mask(device=query.device, workload_kind=query.workload_kind,
                     verdicts=None if query.verdict is None else [query.verdict],
                     kinds=None if query.kind is None else [query.kind])
    if query.workload_name is not None or query.workload_shape is not None:
        shape = None if query.workload_shape is None else dict(query.workload_shape)
        ids = [i for i, w in enumerate(cols.workloads)
               if (query.workload_name is None or w.name == query.workload_name) and (shape is None or w.shape == shape)]
        keep &= np.isin(cols.workload_index, ids)
    with np.errstate(invalid="ignore"):
        if query.since is not None:
            keep &= cols.timestamp >= query.since
        if query.until is not None:
            keep &= cols.timestamp < query.until
    return keep


def stats_of_columns(cols: CorpusColumns, problems: int) -> CorpusStats:
    """``CorpusStats.of`` the records behind ``cols``, counted from the columns."""
    def counts(labels: list[str], index: np.ndarray) -> dict[str, int]:
        out: dict[str, int] = collections.Counter()
        for i, n in zip(*np.unique(index, return_counts=True)):
            out[labels[int(i)]] += int(n)
        return dict(sorted(out.items()))

    labels = [f"{w.kind}:{w.name}" for w in cols.workloads]
    shapes: dict[str, dict] = {}
    first_rows = np.sort(np.unique(cols.workload_index, return_index=True)[1])
    for row in first_rows:  # the shape of each label's first record, as CorpusStats.of keeps it
        w = cols.workloads[int(cols.workload_index[row])]
        shapes.setdefault(f"{w.kind}:{w.name}", dict(w.shape))
    return CorpusStats(len(cols), counts([d.name for d in cols.devices], cols.device_index),
                       counts(labels, cols.workload_index),
                       counts([k.value for k in KIND_CODES], cols.kind),
                       counts([v.value for v in VERDICT_CODES], cols.verdict), shapes, problems)


@amk.hookimpl
def register_stores(register) -> None:
    register(JsonlStore)
