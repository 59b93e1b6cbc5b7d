"""``migrate`` of the SQL stores: rows of an older schema are rewritten in place as their upgraded records.

Every SQL store so far was written in the current schema, so an older row is made here by hand and its
upgrade (a future schema step, which cannot run yet) stands in for ``read_record``'s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.errors import RecordError
from amk.core.migrations import SCHEMA_VERSION
from amk.stores import sql

pytest_plugins = ["store_fixtures"]


@pytest.fixture(params=("sqlite", pytest.param("postgres", marks=pytest.mark.postgres)))
def sql_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'corpus.sqlite'}"
    return request.getfixturevalue("postgres_url")


def make_older(url: str, row_id: int) -> None:
    """Turn row ``row_id`` into what an older schema would have left: an older version, other columns and body."""
    statements = [f"UPDATE amk_records SET schema_version = {SCHEMA_VERSION - 1}, verdict = 'FAIL', latency_us = NULL,"
                  f" config_id = 1 WHERE id = {row_id}",
                  f"UPDATE amk_bodies SET body = '{{\"older\": true}}' WHERE id = {row_id}"]
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.split(":", 1)[1]) as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> dict[int, object]:
    """row id -> the record its older row upgrades to (a RecordError: it cannot be upgraded)."""
    table: dict[int, object] = {}
    original = sql.read_record

    def read(tables, row, where):
        if row[0] not in table:
            return original(tables, row, where)
        if isinstance(table[row[0]], RecordError):
            raise table[row[0]]
        return table[row[0]]

    monkeypatch.setattr(sql, "read_record", read)
    return table


def test_sql_migrate_rewrites_older_rows_as_their_upgraded_records_and_leaves_the_rest(sql_store_url, upgrades):
    records = [make_record(i) for i in range(5)]
    with open_store(sql_store_url) as store:
        store.append(records)
    make_older(sql_store_url, 2)
    make_older(sql_store_url, 4)
    upgraded = attrs.evolve(records[1], config={**records[1].config, "new_knob": 3})  # a config not stored yet
    upgrades.update({2: upgraded, 4: RecordError("row 4 cannot be upgraded")})
    with open_store(sql_store_url) as store:
        report = store.migrate()
    assert f"1 records rewritten in schema {SCHEMA_VERSION}" in report
    assert "1 rows could not be upgraded and were left as they were" in report
    assert ("backup at" in report) == sql_store_url.startswith("sqlite:")
    del upgrades[2]
    with open_store(sql_store_url) as store:
        assert list(store.query()) == [records[0], upgraded, records[2], records[4]]  # row 4 stays unreadable
        assert store.count() == 5
        assert len(store.columns()) == 5
