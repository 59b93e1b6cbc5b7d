"""The ``sqlite`` store (``sqlite:PATH``): embedded, indexed, the recommended local store for large corpora.

The database runs in WAL mode, so readers never block the writer nor each other. Each ``append`` is one
``BEGIN IMMEDIATE`` transaction: all of a batch or none of it, even if the writer is killed mid-batch
(SQLite rolls an unfinished transaction back when the database is next opened). Writers from several
processes queue on SQLite's write lock (``busy_timeout``) and retry when it stays busy.

Tables and what is indexed: see :mod:`amk.stores.sql`. Repeated measurements of the same (workload,
device, config, backend version) are separate rows, i.e. samples; ``query``/``columns`` return each, and
``best_configs`` aggregates best-of (a config's fastest PASS sample), as in :mod:`amk.core.store`.
"""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any, ClassVar

import attrs

from amk.core.errors import StoreError
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import Record, record_id
from amk.io.files import file_identity, write_error
from amk.stores import sql
from amk.stores.files import create_exclusive, non_empty_path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS amk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS amk_workloads (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, name TEXT NOT NULL, shape TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS amk_workloads_by_kind ON amk_workloads (kind, name);
CREATE TABLE IF NOT EXISTS amk_devices (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS amk_devices_by_name ON amk_devices (name);
CREATE TABLE IF NOT EXISTS amk_configs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS amk_device_workloads (
    device_id INTEGER NOT NULL, workload_id INTEGER NOT NULL, PRIMARY KEY (device_id, workload_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS amk_records (
    id INTEGER PRIMARY KEY, schema_version INTEGER NOT NULL,
    workload_id INTEGER NOT NULL, device_id INTEGER NOT NULL, config_id INTEGER NOT NULL,
    verdict TEXT NOT NULL, kind TEXT NOT NULL, latency_us REAL, bound_us REAL, timestamp REAL, source TEXT,
    record_id TEXT);
CREATE TABLE IF NOT EXISTS amk_bodies (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS amk_unreadable (id INTEGER PRIMARY KEY, reason TEXT NOT NULL);
"""
# The unique key on a record's id (see amk.stores.sql); never dropped, unlike the indexes below.
_RECORD_ID_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS amk_records_record_id ON amk_records (record_id)"
                    " WHERE record_id IS NOT NULL")
# amk_records' secondary indexes: created with the tables, dropped and re-created by large appends.
_RECORD_INDEXES = """
CREATE INDEX IF NOT EXISTS amk_records_best ON amk_records
    (device_id, workload_id, verdict, kind, latency_us, config_id, schema_version);
CREATE INDEX IF NOT EXISTS amk_records_by_time ON amk_records (timestamp);
"""
_RECORD_INDEX_NAMES = ("amk_records_best", "amk_records_by_time")
_BUSY = ("locked", "busy")


_CHUNK = 50_000  # records turned into rows and inserted at a time


@attrs.define
class _Batch:
    """What the chunks of one append share: the next record id and the ids interned so far."""

    next_id: int
    encoder: sql.RowEncoder = attrs.field(factory=sql.RowEncoder)  # what records share is serialised once
    workloads: dict[int, int] = attrs.field(factory=dict)  # id(object) -> row id
    devices: dict[int, int] = attrs.field(factory=dict)
    configs: dict[str, int] = attrs.field(factory=dict)  # config key -> row id
    pairs: set[tuple[int, int]] = attrs.field(factory=set)
    keep_alive: list = attrs.field(factory=list)  # the records whose objects' id() the dicts above use


def _synchronous(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"{attribute.name}={value!r} must be OFF, NORMAL, FULL or EXTRA")


class SqliteStore(sql.SqlStore):
    name: ClassVar[str] = "sqlite"
    _scan_hint: ClassVar[str] = "NOT INDEXED"
    url_schemes: ClassVar[tuple[str, ...]] = ("sqlite",)

    @attrs.frozen
    class Options:
        path: str = attrs.field(default=".amk/corpus.sqlite", validator=non_empty_path)
        # how long a writer waits for another's transaction before retrying
        busy_timeout_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
        # how many times an append retries a database that stays busy
        retries: int = attrs.field(default=20, validator=attrs.validators.ge(0))
        # FULL: every commit survives power loss; NORMAL (WAL): survives a crash
        synchronous: str = attrs.field(default="NORMAL", validator=_synchronous)
        # An append of at least this many records, and at least as many as the table holds, drops the
        # records' secondary indexes, inserts, and re-creates them in one sorted pass, all in its one
        # transaction; 0 never does (every row then updates the indexes as it is inserted).
        rebuild_indexes_from: int = attrs.field(default=20_000, validator=attrs.validators.ge(0))

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self.path = Path(self.options.path)
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def options_from_url(cls, url: str) -> dict[str, Any]:
        path = url.split(":", 1)[1].removeprefix("//")  # sqlite:///abs/path, as SQLAlchemy writes it
        if not path:
            raise StoreError(f"store URL {url!r} names no file; write it as sqlite:PATH.")
        return {"path": path}

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def identity(self) -> Hashable:
        """The database file itself (device and inode; its resolved path while it does not exist)."""
        return file_identity(self.path)

    # -- connection ---------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.options.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.options.synchronous.upper()}")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes of a million records stay cached
            conn.execute("PRAGMA foreign_keys=OFF")
            self._retry(lambda: conn.executescript(_SCHEMA))
            self._retry(lambda: self._add_record_id_column(conn))
            self._retry(lambda: conn.executescript(_RECORD_INDEXES + ";" + _RECORD_ID_INDEX))
            meta = dict(conn.execute("SELECT key, value FROM amk_meta").fetchall())
            sql.check_meta(meta, self.describe())
            if not meta:
                self._retry(lambda: conn.execute(
                    "INSERT OR IGNORE INTO amk_meta (key, value) VALUES ('layout_version', ?), ('created_by_schema', ?)",
                    (str(sql.LAYOUT_VERSION), str(SCHEMA_VERSION))))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open {self.describe()}: {exc}; check that it is an amk SQLite corpus.") from None
        except OSError as exc:
            raise StoreError(f"cannot open {self.describe()}: {exc.strerror}; check the path and permissions.") from None
        return conn

    @staticmethod
    def _add_record_id_column(conn: sqlite3.Connection) -> None:
        """Give a database made by an earlier amk the ``record_id`` column (see amk.stores.sql)."""
        if any(row[1] == "record_id" for row in conn.execute("PRAGMA table_info(amk_records)")):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not any(row[1] == "record_id" for row in conn.execute("PRAGMA table_info(amk_records)")):
                conn.execute("ALTER TABLE amk_records ADD COLUMN record_id TEXT")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _retry(self, action):
        for attempt in range(self.options.retries + 1):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if attempt == self.options.retries or not any(word in str(exc) for word in _BUSY):
                    raise
                time.sleep(min(1.0, 0.01 * 2 ** attempt) * random.random())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- writing ------------------------------------------------------------------------------------

    def append(self, records: Iterable[Record]) -> int:
        # Chunks bound the rows built at once for a huge batch; the batch is still one transaction.
        # (Building rows in one thread while another inserts was measured slower: the GIL convoys.)
        size = len(records) if isinstance(records, Sized) else None
        remaining = iter(records)
        chunks = [list(itertools.islice(remaining, _CHUNK))]
        if not chunks[0]:
            return 0
        try:
            self._retry(lambda: self._append_chunks(chunks, remaining, size or len(chunks[0])))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot append to {self.describe()}: {exc}; check the file and free disk space.") from None
        return sum(len(chunk) for chunk in chunks)

    def append_new(self, records: Mapping[str, Record], *, identity: Callable[[Record], str] = record_id) -> int:
        """In one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock): which of ``records`` the database holds
        (by ``identity``, and by the ``record_id`` key), then the others, each row keyed by its record id."""
        if not records:
            return 0
        keyed = sql.row_record_ids(records, identity)  # the unique key of each row
        chunks: list[list[Record]] = [list(records.values())]
        ids: list[list[str]] = [list(keyed.values())]

        def new_only() -> None:  # under the write lock, before anything is inserted
            held_keys = self._keyed_ids(list(keyed.values()))
            held = sql.SqlStore.known_ids(self, records, identity=identity)
            new = [(keyed[rid], r) for rid, r in records.items() if rid not in held and keyed[rid] not in held_keys]
            chunks[:] = [[r for _, r in new[i:i + _CHUNK]] for i in range(0, len(new), _CHUNK)]
            ids[:] = [[rid for rid, _ in new[i:i + _CHUNK]] for i in range(0, len(new), _CHUNK)]

        try:
            self._retry(lambda: self._append_chunks(chunks, iter(()), len(records), new_only=new_only, ids=ids))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot append to {self.describe()}: {exc}; check the file and free disk space.") from None
        return sum(len(chunk) for chunk in chunks)

    def _append_chunks(self, chunks: list[list[Record]], remaining: Iterator[Record], size: int, *,
                       new_only: Callable[[], None] | None = None, ids: list[list[str]] | None = None) -> None:
        """One transaction over every chunk; ``chunks`` grows with records from ``remaining`` (kept for a retry).

        ``size`` is the number of records appended (at least, when the iterable has no length). A large
        append drops the records' indexes first and re-creates them before the commit: sorting once is far
        cheaper than updating the B-trees row by row. The DDL is part of the transaction, so a rollback, a
        crash or a kill restores the indexes together with the table.
        """
        conn = self.conn
        pending: dict[str, dict[Any, int]] = {k: {} for k in self._ids}
        conn.execute("BEGIN IMMEDIATE")
        try:
            if new_only is not None:
                new_only()
                size = sum(len(chunk) for chunk in chunks)
            batch = _Batch(conn.execute("SELECT COALESCE(MAX(id), 0) FROM amk_records").fetchone()[0] + 1)
            threshold = self.options.rebuild_indexes_from
            rebuild = 0 < threshold <= size and size >= batch.next_id - 1  # ids are dense: next_id - 1 rows
            if rebuild:
                for index in _RECORD_INDEX_NAMES:
                    conn.execute(f"DROP INDEX IF EXISTS {index}")
            for i in itertools.count():
                if i == len(chunks):
                    chunk = list(itertools.islice(remaining, _CHUNK))
                    if not chunk:
                        break
                    chunks.append(chunk)
                self._insert_records(conn, chunks[i], batch, pending, None if ids is None else ids[i])
            new_pairs = batch.pairs - self._ids["pair"].keys()
            if new_pairs:
                conn.executemany("INSERT OR IGNORE INTO amk_device_workloads (device_id, workload_id) VALUES (?, ?)",
                                 sorted(new_pairs))
                pending["pair"].update(dict.fromkeys(new_pairs, 1))
            if rebuild:
                for statement in filter(str.strip, _RECORD_INDEXES.split(";")):
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for kind, new in pending.items():  # ids of a rolled-back transaction must not be remembered
            self._ids[kind].update(new)

    def _insert_records(self, conn: sqlite3.Connection, records: list[Record], batch: _Batch,
                        pending: dict[str, dict[Any, int]], record_ids: list[str] | None = None) -> None:
        """Insert ``records`` in one pass: each record straight to its two table rows (the config key and the
        body from ``batch.encoder``, as ``sql.record_rows`` makes them).

        Most records share their workload, device and config: each is interned once per batch, the
        workload and device keyed by id() (``batch.keep_alive`` holds the objects for the whole batch).
        """
        w_ids, d_ids, c_ids, pairs = batch.workloads, batch.devices, batch.configs, batch.pairs
        keys, bodies = batch.encoder.encode(records)
        record_values, body_values = [], []
        rid = batch.next_id
        for r, key, body, key_id in zip(records, keys, bodies, record_ids or itertools.repeat(None)):
            m, p, workload, device = r.measurement, r.provenance, r.workload, r.device
            w = w_ids.get(id(workload))
            if w is None:
                w = w_ids[id(workload)] = self._intern(conn, "workload", workload, pending)
            d = d_ids.get(id(device))
            if d is None:
                d = d_ids[id(device)] = self._intern(conn, "device", device, pending)
            c = c_ids.get(key)
            if c is None:
                c = c_ids[key] = self._intern(conn, "config", key, pending)
            pairs.add((d, w))
            # _value_ is the enum's plain attribute (.value is a slower property; both are the same str).
            record_values.append((rid, SCHEMA_VERSION, w, d, c, m.verdict._value_, m.kind._value_, m.latency_us,
                                  m.bound_us, p.timestamp, p.source, key_id))
            body_values.append((rid, body))
            rid += 1
        batch.next_id = rid
        batch.keep_alive.append(records)
        conn.executemany(
            "INSERT INTO amk_records (id, schema_version, workload_id, device_id, config_id, verdict, kind,"
            " latency_us, bound_us, timestamp, source, record_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            record_values)
        conn.executemany("INSERT INTO amk_bodies (id, body) VALUES (?, ?)", body_values)

    def _intern(self, conn: sqlite3.Connection, kind: str, value: Any, pending: dict[str, dict[Any, int]]) -> int:
        key = self._unique_key(kind, value)
        known = self._ids[kind].get(key)
        if known is None:
            known = pending[kind].get(key)
        if known is not None:
            return known
        if kind == "workload":
            conn.execute("INSERT OR IGNORE INTO amk_workloads (key, kind, name, shape) VALUES (?, ?, ?, ?)",
                         sql.workload_row(value))
            table = "amk_workloads"
        elif kind == "device":
            conn.execute("INSERT OR IGNORE INTO amk_devices (key, name) VALUES (?, ?)", (key, value.name))
            table = "amk_devices"
        else:
            conn.execute("INSERT OR IGNORE INTO amk_configs (key) VALUES (?)", (key,))
            table = "amk_configs"
        new_id = conn.execute(f"SELECT id FROM {table} WHERE key = ?", (key,)).fetchone()[0]
        pending[kind][key] = new_id
        return new_id

    # -- reading ------------------------------------------------------------------------------------

    def known_ids(self, records: Mapping[str, Record], *,
                  identity: Callable[[Record], str] | None = None) -> set[str]:
        try:
            return super().known_ids(records, identity=identity)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read {self.describe()}: {exc}; check the file.") from None

    def _fetchall(self, statement: str, params=()) -> list[tuple]:
        return self.conn.execute(statement, list(params)).fetchall()

    def _stream(self, statement: str, params=()) -> Iterator[list[tuple]]:
        cursor = self.conn.execute(statement, list(params))
        while batch := cursor.fetchmany(2000):
            yield batch

    def _write_unreadable(self, gone: list[int], added: list[tuple[int, str]]) -> None:
        conn = self.conn

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM amk_unreadable WHERE id = ?", [(rid,) for rid in gone])
                conn.executemany("INSERT OR REPLACE INTO amk_unreadable (id, reason) VALUES (?, ?)", added)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        try:
            self._retry(write)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write {self.describe()}: {exc}") from None

    def _migration_backup(self) -> str:
        """A copy of the database (``VACUUM INTO``) under a unique name, created empty and exclusively first."""
        try:
            fd, backup = create_exclusive(self.path.parent, f"{self.path.name}.bak")
            os.close(fd)
        except OSError as exc:
            raise write_error("the backup of", self.path.parent / f"{self.path.name}.bak-*", exc) from None
        try:
            self.conn.execute("VACUUM INTO ?", (str(backup),))
        except sqlite3.DatabaseError as exc:
            backup.unlink(missing_ok=True)
            raise StoreError(f"cannot back up {self.describe()} to {backup} before migrating: {exc}; free disk "
                             "space, then migrate again (nothing was changed).") from None
        return f", backup at {backup}"

    def _rewrite(self, row_ids: list[int], rows: list[sql.RecordRow]) -> dict[str, dict[Any, int]]:
        conn = self.conn
        pending: dict[str, dict[Any, int]] = {k: {} for k in self._ids}
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._rewrite_rows(conn, row_ids, rows, lambda r: (self._intern(conn, "workload", r.workload, pending),
                                                               self._intern(conn, "device", r.device, pending),
                                                               self._intern(conn, "config", r.config_key, pending)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return pending
