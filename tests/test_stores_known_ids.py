"""``Store.known_ids``: which record ids a store already holds (what ``amk corpus import`` skips)."""

from __future__ import annotations

import sqlite3

from store_helpers import make_record

from amk.core.config import open_store
from amk.core.records import record_id, record_to_json
from amk.stores.sqlite import SqliteStore

pytest_plugins = ["store_fixtures"]


def test_known_ids_are_exactly_the_ids_of_stored_records(store):
    store.append([make_record(i) for i in range(6)])
    held = [record_id(make_record(i)) for i in range(6)]
    absent = [record_id(make_record(i)) for i in range(6, 9)]
    assert store.known_ids(held[::2] + absent) == set(held[::2])
    assert store.known_ids([]) == set()


def test_known_ids_see_records_appended_after_an_earlier_call(store):
    store.append([make_record(0)])
    late = record_id(make_record(1))
    assert store.known_ids([late]) == set()
    store.append([make_record(1)])
    assert store.known_ids([late]) == {late}


def test_sqlite_keeps_each_records_hash_once_and_answers_from_them(tmp_path):
    url = f"sqlite:{tmp_path / 'c.sqlite'}"
    with open_store(url) as store:
        store.append([make_record(i) for i in range(4)])
        store.known_ids(["x"])
        store.append([make_record(i) for i in range(4, 6)])
        assert store.known_ids([record_id(make_record(5))]) == {record_id(make_record(5))}
        rows = store.conn.execute("SELECT id, record_id FROM amk_hashes ORDER BY id").fetchall()
    assert rows == [(i + 1, record_id(make_record(i))) for i in range(6)]


def test_a_sqlite_file_from_before_the_hashes_table_gets_it_and_answers(tmp_path):
    path = tmp_path / "old.sqlite"
    with SqliteStore(SqliteStore.Options(path=str(path))) as store:
        store.append([make_record(i) for i in range(3)])
    with sqlite3.connect(path) as conn:  # what an older amk wrote: no hashes table
        conn.execute("DROP TABLE amk_hashes")
    with open_store(f"sqlite:{path}") as store:
        assert store.known_ids([record_id(make_record(1)), "nope"]) == {record_id(make_record(1))}
        assert store.count() == 3


def test_a_postgres_database_from_before_the_hashes_table_gets_it_and_answers(postgres_url):
    import psycopg

    with open_store(postgres_url) as store:
        store.append([make_record(i) for i in range(3)])
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # what an older amk wrote: no hashes table
        conn.execute("DROP TABLE amk_hashes")
    with open_store(postgres_url) as store:
        assert store.known_ids([record_id(make_record(1)), "nope"]) == {record_id(make_record(1))}
        store.append([make_record(3)])
        assert store.known_ids([record_id(make_record(3))]) == {record_id(make_record(3))}
        assert store._fetchall("SELECT COUNT(*) FROM amk_hashes")[0][0] == 4  # each row hashed once


def test_import_of_an_overlapping_file_into_sqlite_skips_only_what_the_store_holds(run_amk, tmp_path):
    # Records that name their source (i % 3 != 0), so the same record reads the same from either file.
    numbers = [i for i in range(12) if i % 3]
    (tmp_path / "a.jsonl").write_text("".join(record_to_json(make_record(i)) + "\n" for i in numbers[:5]))
    (tmp_path / "b.jsonl").write_text("".join(record_to_json(make_record(i)) + "\n"
                                              for i in [*numbers[3:], numbers[-1]]))
    url = f"sqlite:{tmp_path / 'c.sqlite'}"
    assert "imported 5 records" in run_amk("--store", url, "corpus", "import", "a.jsonl").stdout
    second = run_amk("--store", url, "corpus", "import", "b.jsonl")
    assert "imported 3 records" in second.stdout
    assert "3 already in the store (skipped)" in second.stdout  # two from a.jsonl, and the repeated last one
    with open_store(url) as store:
        assert sorted(r.provenance.extra["i"] for r in store.query()) == numbers
