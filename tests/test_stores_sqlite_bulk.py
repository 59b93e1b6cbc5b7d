"""sqlite bulk appends: a large append re-creates the records' indexes in its own transaction."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_helpers import make_record

from amk.stores.sqlite import SqliteStore

TESTS = Path(__file__).resolve().parent
INDEXES = {"amk_records_best", "amk_records_by_time"}  # dropped and re-created by a large append
RECORD_ID_KEY = "amk_records_record_id"  # the unique key on a record's id (amk.stores.sql): never dropped


def record_indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'amk_records'")}


def open_sqlite(path: Path, **options) -> SqliteStore:
    return SqliteStore(SqliteStore.Options(path=str(path), **options))


def test_a_large_append_leaves_both_record_indexes_and_every_record(tmp_path):
    path = tmp_path / "c.sqlite"
    with open_sqlite(path, rebuild_indexes_from=10) as store:
        store.append([make_record(i) for i in range(5)])
        assert store.append([make_record(i) for i in range(5, 105)]) == 100
        assert [r.provenance.extra["i"] for r in store.query()] == list(range(105))
        plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM amk_records WHERE device_id = 1"
                                  " AND workload_id = 1").fetchall()
    assert record_indexes(path) == INDEXES | {RECORD_ID_KEY}
    assert "amk_records_best" in str(plan)


def test_a_large_append_that_fails_midway_rolls_back_rows_and_keeps_the_indexes(tmp_path, monkeypatch):
    import amk.stores.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "_CHUNK", 10)  # several chunks, so the failure comes after inserts
    path = tmp_path / "c.sqlite"

    def records():
        for i in range(5, 60):
            if i == 40:
                raise RuntimeError("the source failed")
            yield make_record(i)

    with open_sqlite(path, rebuild_indexes_from=5) as store:
        store.append([make_record(i) for i in range(5)])
        with pytest.raises(RuntimeError, match="source failed"):
            store.append(records())
        assert store.count() == 5
    assert record_indexes(path) == INDEXES | {RECORD_ID_KEY}


# A writer that appends a large batch with its indexes dropped, says so, and hangs inside the transaction.
_HANGING_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from store_helpers import make_record
    import amk.stores.sqlite as sqlite_module
    from amk.stores.sqlite import SqliteStore

    sqlite_module._CHUNK = 10
    store = SqliteStore(SqliteStore.Options(path={path!r}, rebuild_indexes_from=5))

    def records():
        for i in range(5, 100):
            if i == 40:
                names = {{n for (n,) in store.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'amk_records'")}}
                print(len(names - {{"amk_records_record_id"}}), flush=True)  # the transaction's: dropped
                time.sleep(600)
            yield make_record(i)

    store.append(records())
""")


def test_a_writer_killed_while_its_indexes_are_dropped_leaves_the_indexes_and_no_part_of_its_batch(tmp_path):
    path = tmp_path / "c.sqlite"
    with open_sqlite(path) as store:
        store.append([make_record(i) for i in range(5)])
    writer = subprocess.Popen([sys.executable, "-c", _HANGING_WRITER.format(tests=str(TESTS), path=str(path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        seen = writer.stdout.readline().strip()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    assert seen == "0"  # the kill landed while the batch was half inserted and its indexes dropped
    with open_sqlite(path) as store:
        assert [r.provenance.extra["i"] for r in store.query()] == list(range(5))
        assert store.problems() == []
    assert record_indexes(path) == INDEXES | {RECORD_ID_KEY}


def test_a_small_append_into_a_large_table_keeps_its_indexes_in_place(tmp_path):
    path = tmp_path / "c.sqlite"
    with open_sqlite(path, rebuild_indexes_from=5) as store:
        store.append([make_record(i) for i in range(50)])
        store.conn.execute("CREATE TABLE dropped (name TEXT)")
        store.conn.execute("CREATE TRIGGER watch AFTER INSERT ON amk_records BEGIN"
                           " INSERT INTO dropped SELECT name FROM sqlite_master WHERE name = 'amk_records_best'; END")
        store.append([make_record(i) for i in range(50, 60)])  # 10 < 50 rows already there: no rebuild
        assert store.conn.execute("SELECT COUNT(*) FROM dropped").fetchone()[0] == 10


def test_the_bulk_path_writes_the_same_rows_as_the_shared_record_rows(tmp_path):
    from amk.stores import sql

    records = [make_record(i, writer=i % 2) for i in range(40)]
    with open_sqlite(tmp_path / "c.sqlite") as store:
        store.append(records)
        stored = store.conn.execute(
            "SELECT r.verdict, r.kind, r.latency_us, r.bound_us, r.timestamp, r.source, b.body, c.key"
            " FROM amk_records r JOIN amk_bodies b ON b.id = r.id JOIN amk_configs c ON c.id = r.config_id"
            " ORDER BY r.id").fetchall()
        assert list(store.query()) == records
    expected = [(row.verdict, row.kind, row.latency_us, row.bound_us, row.timestamp, row.source, row.body,
                 row.config_key) for row in sql.record_rows(records)]
    assert stored == expected
