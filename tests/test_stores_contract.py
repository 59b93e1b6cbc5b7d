"""Every built-in store meets amk.testing's store contract: jsonl (with and without its columns cache),
sqlite, memory, and a real PostgreSQL. Each check is its own test; the checks are in amk/testing/stores.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from amk.core.config import open_store
from amk.core.store import Store
from amk.stores.jsonl import JsonlStore
from amk.testing import parametrize_with_checks, store_checks

pytest_plugins = ["store_fixtures"]

SPOILED_BODY = '{"measurement": 7'  # a torn JSON object where a record was


def spoil_jsonl_line(store: Store) -> None:
    """Overwrite the second line of a jsonl store's file with a torn record."""
    path = Path(store.options.path)
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = SPOILED_BODY + "\n"
    path.write_text("".join(lines))


def _execute_sql(store: Store, statement: str) -> None:
    """Change a SQL store behind amk's back (what a bad tool, a disk fault or a newer amk could do)."""
    if store.name == "sqlite":
        with sqlite3.connect(store.options.path) as conn:
            conn.execute(statement)
    else:
        import psycopg

        with psycopg.connect(store.options.url, autocommit=True) as conn:
            conn.execute(statement)


def spoil_sql_schema(store: Store) -> None:
    """Mark the second stored record as written by a newer amk (schema_version 99), which this one cannot read."""
    _execute_sql(store, "UPDATE amk_records SET schema_version = 99 WHERE id = (SELECT MIN(id) + 1 FROM amk_records)")


def spoil_sql_body(store: Store) -> None:
    """Overwrite the second stored body of a SQL store with a torn record."""
    _execute_sql(store, f"UPDATE amk_bodies SET body = '{SPOILED_BODY}' WHERE id = (SELECT MIN(id) + 1 FROM amk_bodies)")


BUILT_IN_CHECKS = [
    *store_checks(lambda directory: open_store(f"jsonl:{directory / 'corpus.jsonl'}"),
                  spoil_entry=spoil_jsonl_line, label="jsonl"),
    *store_checks(lambda directory: JsonlStore(JsonlStore.Options(path=str(directory / "corpus.jsonl"),
                                                                  columns_cache=False)),
                  spoil_entry=spoil_jsonl_line, label="jsonl-uncached"),
    *store_checks(lambda directory: open_store(f"sqlite:{directory / 'corpus.sqlite'}"),
                  spoil_entry=spoil_sql_schema, label="sqlite"),
    # A named memory store, so a second MemoryStore with the same options sees the same records.
    *store_checks(lambda directory: open_store(f"memory:{directory}"), label="memory"),
]


@parametrize_with_checks(BUILT_IN_CHECKS)
def test_a_built_in_store_meets_the_store_contract(check):
    check()


@pytest.mark.postgres
@parametrize_with_checks(store_checks(spoil_entry=spoil_sql_schema, label="postgres"))
def test_the_postgres_store_meets_the_store_contract(check, postgres_server):
    check(make_store=lambda directory: open_store(postgres_server.new_database()))


@pytest.mark.xfail(strict=True, reason="known gap: a SQL row whose body is unreadable is still counted by count(), "
                                       "columns() and stats() (from the index columns), though query() cannot read it")
def test_sqlite_count_columns_and_stats_leave_out_a_row_whose_body_is_unreadable():
    [check] = [c for c in store_checks(lambda directory: open_store(f"sqlite:{directory / 'corpus.sqlite'}"),
                                       spoil_entry=spoil_sql_body) if c.name == "an_unreadable_entry_is_reported_by_problems"]
    check.run()
