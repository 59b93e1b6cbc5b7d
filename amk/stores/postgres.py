"""The ``postgres`` store (``postgresql://...``, ``postgres://...``): a team's shared corpus.

Many machines append at once: each ``append`` is one transaction (all of a batch or none of it; a
writer killed mid-batch leaves nothing behind, PostgreSQL aborts its transaction). New workloads,
devices and configs are inserted in key order with ``ON CONFLICT DO NOTHING``, so concurrent writers
never deadlock on them; records go in with ``COPY``. A transaction that still fails for a transient
reason (a deadlock, a serialization failure) is retried.

Tables and what is indexed: see :mod:`amk.stores.sql` (keys are unique by their md5, as PostgreSQL
cannot index long text). Repeated measurements of the same (workload, device, config, backend version)
are separate rows, i.e. samples; ``query``/``columns`` return each, and ``best_configs`` aggregates
best-of (a config's fastest PASS sample), as in :mod:`amk.core.store`.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from amk.core.errors import StoreError
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import Record, record_id
from amk.io.display import redact
from amk.stores import sql

_SCHEMA = """
CREATE TABLE IF NOT EXISTS amk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS amk_workloads (
    id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, shape TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS amk_workloads_key ON amk_workloads (md5(key));
CREATE INDEX IF NOT EXISTS amk_workloads_by_kind ON amk_workloads (kind, name);
CREATE TABLE IF NOT EXISTS amk_devices (id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL, name TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS amk_devices_key ON amk_devices (md5(key));
CREATE INDEX IF NOT EXISTS amk_devices_by_name ON amk_devices (name);
CREATE TABLE IF NOT EXISTS amk_configs (id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS amk_configs_key ON amk_configs (md5(key));
CREATE TABLE IF NOT EXISTS amk_device_workloads (
    device_id BIGINT NOT NULL, workload_id BIGINT NOT NULL, PRIMARY KEY (device_id, workload_id));
CREATE SEQUENCE IF NOT EXISTS amk_records_id_seq;
CREATE TABLE IF NOT EXISTS amk_records (
    id BIGINT PRIMARY KEY, schema_version INTEGER NOT NULL,
    workload_id BIGINT NOT NULL, device_id BIGINT NOT NULL, config_id BIGINT NOT NULL,
    verdict TEXT NOT NULL, kind TEXT NOT NULL,
    latency_us DOUBLE PRECISION, bound_us DOUBLE PRECISION, timestamp DOUBLE PRECISION, source TEXT);
CREATE INDEX IF NOT EXISTS amk_records_best ON amk_records
    (device_id, workload_id, verdict, kind, latency_us, config_id, schema_version);
CREATE INDEX IF NOT EXISTS amk_records_by_workload ON amk_records (workload_id);
CREATE INDEX IF NOT EXISTS amk_records_by_time ON amk_records (timestamp);
CREATE TABLE IF NOT EXISTS amk_bodies (id BIGINT PRIMARY KEY, body TEXT NOT NULL);
"""
# What later amks added (see amk.stores.sql), applied to the tables of an earlier one too.
_ADDITIONS = """
ALTER TABLE amk_records ADD COLUMN IF NOT EXISTS record_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS amk_records_record_id ON amk_records (record_id) WHERE record_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS amk_unreadable (id BIGINT PRIMARY KEY, reason TEXT NOT NULL);
INSERT INTO amk_meta (key, value) VALUES ('store_id', md5(random()::text || clock_timestamp()::text))
    ON CONFLICT DO NOTHING;
"""
_CURSOR_NAMES = itertools.count()
_SCHEMA_LOCK = 0x616D6B  # advisory lock id: creating the tables once when several writers start together
_UNIQUE_TABLES = {
    "workload": ("amk_workloads", "key, kind, name, shape"),
    "device": ("amk_devices", "key, name"),
    "config": ("amk_configs", "key"),
}


class PostgresStore(sql.SqlStore):
    name: ClassVar[str] = "postgres"
    url_schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")
    requires: ClassVar[dict[str, str]] = {"psycopg": "postgres"}
    ph: ClassVar[str] = "%s"
    _key_column: ClassVar[str] = "md5(key)"
    _key_param: ClassVar[str] = "md5(%s)"

    @attrs.frozen
    class Options:
        url: str = ""  # postgresql://user@host:port/dbname (or a libpq conninfo string); "" uses $PG* variables
        connect_timeout_s: int = attrs.field(default=10, validator=attrs.validators.ge(1))
        # how many times an append retries a transient failure (deadlock, serialization, a concurrent import)
        retries: int = attrs.field(default=10, validator=attrs.validators.ge(0))

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self._conn = None
        self._writer = None

    @classmethod
    def options_from_url(cls, url: str) -> dict[str, Any]:
        return {"url": url}

    def describe(self) -> str:
        return redact(self.options.url) if self.options.url else "postgres (from $PG* variables)"

    def identity(self) -> Hashable:
        """The database's amk tables, by the random ``store_id`` made with them (whatever the URL's spelling)."""
        rows = self._fetchall("SELECT value FROM amk_meta WHERE key = 'store_id'")
        return ("postgres", rows[0][0] if rows else self.describe())

    # -- connection ---------------------------------------------------------------------------------

    @property
    def conn(self):
        """The connection reads use (a read in progress holds a transaction open on it)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @property
    def writer(self):
        """The connection appends use: its own, so an append commits even while a read is in progress
        (on the reading connection it would be nested in the read's transaction, and rolled back with it)."""
        if self._writer is None:
            self.conn  # noqa: B018  (creates the tables first)
            self._writer = self._connect()
        return self._writer

    def _connect(self):
        import psycopg

        try:
            conn = psycopg.connect(self.options.url, autocommit=True,
                                   connect_timeout=self.options.connect_timeout_s)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to {self.describe()}: {redact(reason)}; check the URL and that the "
                             "server runs.") from None
        try:
            with conn.transaction():
                ready = conn.execute(
                    "SELECT to_regclass('amk_unreadable') IS NOT NULL AND EXISTS (SELECT 1 FROM information_schema.columns"
                    " WHERE table_name = 'amk_records' AND column_name = 'record_id'"
                    " AND table_schema = current_schema())").fetchone()[0]
                if not ready:  # the first writer creates the tables; the others wait for it here
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    conn.execute(_SCHEMA)
                    conn.execute(_ADDITIONS)
                meta = dict(conn.execute("SELECT key, value FROM amk_meta").fetchall())
                sql.check_meta(meta, self.describe())
                if "layout_version" not in meta:
                    conn.execute("INSERT INTO amk_meta (key, value) VALUES ('layout_version', %s), "
                                 "('created_by_schema', %s) ON CONFLICT DO NOTHING",
                                 (str(sql.LAYOUT_VERSION), str(SCHEMA_VERSION)))
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot set up the amk tables in {self.describe()}: {redact(str(exc))}; check the user's "
                             "rights.") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        for conn in (self._conn, self._writer):
            if conn is not None:
                conn.close()
        self._conn = self._writer = None
        self._writer = None

    # -- writing ------------------------------------------------------------------------------------

    def append(self, records: Iterable[Record]) -> int:
        rows = sql.record_rows(records)
        if not rows:
            return 0
        self._with_retries(lambda: self._append_rows(rows))
        return len(rows)

    def append_new(self, records: Mapping[str, Record], *, identity: Callable[[Record], str] = record_id) -> int:
        """Those of ``records`` no committed row holds (by content, or by its ``record_id`` key), appended in one
        transaction with their keys; when another writer commits one of them first, the unique key refuses
        this transaction and it starts again from the check."""
        if not records:
            return 0
        encoder = sql.RowEncoder()
        keyed = sql.row_record_ids(records, identity)  # the unique key of each row

        def attempt() -> int:
            held_keys = self._keyed_ids(list(keyed.values()))
            held = self.known_ids(records, identity=identity)
            new = [(keyed[rid], r) for rid, r in records.items() if rid not in held and keyed[rid] not in held_keys]
            if new:
                self._append_rows(encoder.rows(r for _, r in new), [rid for rid, _ in new])
            return len(new)

        return self._with_retries(attempt)

    def _with_retries(self, action: Callable[[], Any]) -> Any:
        """``action()``, again after a transient failure (deadlock, serialization failure, or a unique key taken
        by a concurrent import), at most ``retries`` more times."""
        import psycopg
        from psycopg import errors

        for attempt in range(self.options.retries + 1):
            try:
                return action()
            except (errors.DeadlockDetected, errors.SerializationFailure, errors.UniqueViolation):
                if attempt == self.options.retries:
                    raise StoreError(f"cannot append to {self.describe()}: it stayed contended after "
                                     f"{attempt + 1} tries; try again.") from None
                time.sleep(min(1.0, 0.01 * 2 ** attempt) * random.random())
            except psycopg.Error as exc:
                raise StoreError(f"cannot append to {self.describe()}: {redact(str(exc))}; check the server and its "
                                 "disk.") from None
        raise AssertionError("unreachable")

    def _append_rows(self, rows: list[sql.RecordRow], record_ids: Sequence[str] | None = None) -> None:
        conn = self.writer
        pending: dict[str, dict[Any, int]] = {}
        keys = self._row_keys(rows)
        with conn.transaction():
            for i, kind in enumerate(("workload", "device", "config")):
                pending[kind] = self._intern(conn, kind, {k[i]: r[i] for k, r in zip(keys, rows)})

            def id_of(kind: str, key: str) -> int:
                return self._ids[kind].get(key) or pending[kind][key]

            ids = [(id_of("workload", w), id_of("device", d), id_of("config", c)) for w, d, c in keys]
            pairs = sorted({(d, w) for w, d, _ in ids} - self._ids["pair"].keys())
            if pairs:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO amk_device_workloads (device_id, workload_id) VALUES (%s, %s)"
                                    " ON CONFLICT DO NOTHING", pairs)
            row_ids = [row[0] for row in conn.execute(
                "SELECT nextval('amk_records_id_seq') FROM generate_series(1, %s)", (len(rows),)).fetchall()]
            row_ids.sort()
            with conn.cursor() as cur:
                with cur.copy("COPY amk_records (id, schema_version, workload_id, device_id, config_id, verdict,"
                              " kind, latency_us, bound_us, timestamp, source, record_id) FROM STDIN") as copy:
                    for rid, (w, d, c), r, key in zip(row_ids, ids, rows, record_ids or itertools.repeat(None)):
                        copy.write_row((rid, SCHEMA_VERSION, w, d, c, r.verdict, r.kind, r.latency_us, r.bound_us,
                                        r.timestamp, r.source, key))
                with cur.copy("COPY amk_bodies (id, body) FROM STDIN") as copy:
                    for rid, r in zip(row_ids, rows):
                        copy.write_row((rid, r.body))
        # Only now, after the commit: ids of a rolled-back transaction must not be remembered.
        for kind in ("workload", "device", "config"):
            self._ids[kind].update(pending[kind])
        self._ids["pair"].update(dict.fromkeys(pairs, 1))

    def _row_keys(self, rows: list[sql.RecordRow]) -> list[tuple[str, str, str]]:
        """Each row's (workload, device, config) unique-table key (``sql.unique_key``)."""
        return [(self._unique_key("workload", r.workload), self._unique_key("device", r.device), r.config_key)
                for r in rows]

    def _intern(self, conn, kind: str, values: dict[str, Any]) -> dict[str, int]:
        """Ids of the unique-table entries ``values`` (by their ``sql.unique_key``) not yet known here, inserting
        those that are new."""
        new = {k: v for k, v in values.items() if k not in self._ids[kind]}
        if not new:
            return {}
        table, columns = _UNIQUE_TABLES[kind]
        if kind == "workload":
            rows = {k: sql.workload_row(w) for k, w in new.items()}
        elif kind == "device":
            rows = {k: (k, d.name) for k, d in new.items()}
        else:
            rows = {k: (k,) for k in new}
        ordered = sorted(rows.values())  # one insertion order for every writer: no deadlocks between them
        placeholders = ", ".join(["%s"] * len(ordered[0]))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
                            " ON CONFLICT (md5(key)) DO NOTHING", ordered)
        keys = [row[0] for row in ordered]
        found = {key: rid for rid, key in conn.execute(
            f"SELECT id, key FROM {table} WHERE md5(key) = ANY(ARRAY(SELECT md5(k) FROM unnest(%s::text[]) AS k))",
            (keys,)).fetchall()}
        return {value: found[row[0]] for value, row in rows.items()}

    # -- reading ------------------------------------------------------------------------------------

    def _fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        import psycopg

        try:
            return self.conn.execute(statement, list(params)).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"cannot read {self.describe()}: {redact(str(exc))}; check the server.") from None

    def _write_unreadable(self, gone: list[int], added: list[tuple[int, str]]) -> None:
        import psycopg

        conn = self.writer
        try:
            with conn.transaction(), conn.cursor() as cur:
                if gone:
                    cur.execute("DELETE FROM amk_unreadable WHERE id = ANY(%s)", (gone,))
                if added:
                    cur.executemany("INSERT INTO amk_unreadable (id, reason) VALUES (%s, %s) ON CONFLICT (id)"
                                    " DO UPDATE SET reason = EXCLUDED.reason", added)
        except psycopg.Error as exc:
            raise StoreError(f"cannot write {self.describe()}: {redact(str(exc))}") from None

    def _stream(self, statement: str, params: Sequence[Any] = ()) -> Iterator[list[tuple]]:
        import psycopg

        conn = self.conn
        try:
            with conn.transaction(), conn.cursor(name=f"amk_read_{next(_CURSOR_NAMES)}") as cur:
                cur.execute(statement, list(params))
                while batch := cur.fetchmany(2000):
                    yield batch
        except psycopg.Error as exc:
            raise StoreError(f"cannot read {self.describe()}: {redact(str(exc))}; check the server.") from None

    def _rewrite(self, row_ids: list[int], rows: list[sql.RecordRow]) -> dict[str, dict[Any, int]]:
        conn = self.writer
        with conn.transaction():
            keys = self._row_keys(rows)
            pending = {kind: self._intern(conn, kind, {k[i]: r[i] for k, r in zip(keys, rows)})
                       for i, kind in enumerate(("workload", "device", "config"))}
            keys_of = {id(r): k for r, k in zip(rows, keys)}
            self._rewrite_rows(conn, row_ids, rows, lambda r: tuple(
                self._ids[kind].get(key) or pending[kind][key]
                for kind, key in zip(("workload", "device", "config"), keys_of[id(r)])))
        return pending
