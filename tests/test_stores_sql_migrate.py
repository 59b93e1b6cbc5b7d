"""``migrate`` of the SQL stores: rows of an older schema are rewritten in place as their upgraded records.

The older rows are real: the original system's records (schema 0, ``tests/data/upstream_v0.jsonl``, taken
from ``../shared/data/amk_upstream``) put into the store's tables as such a row holds them, and upgraded by
the real migration chain, with nothing of amk patched.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import record_from_dict

pytest_plugins = ["store_fixtures"]

UPSTREAM = Path(__file__).parent / "data" / "upstream_v0.jsonl"


@pytest.fixture(params=("sqlite", pytest.param("postgres", marks=pytest.mark.postgres)))
def sql_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'corpus.sqlite'}"
    return request.getfixturevalue("postgres_url")


def execute(url: str, statement: str, params: tuple) -> None:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.split(":", 1)[1]) as conn:
            conn.execute(statement, params)
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement.replace("?", "%s"), params)


def make_original(url: str, row_id: int, raw: dict) -> None:
    """Row ``row_id`` becomes a schema-0 row holding the original system's record ``raw``."""
    execute(url, "UPDATE amk_records SET schema_version = 0 WHERE id = ?", (row_id,))
    execute(url, "UPDATE amk_bodies SET body = ? WHERE id = ?", (json.dumps(raw), row_id))


def test_sql_migrate_upgrades_original_records_through_the_real_chain_and_leaves_the_rest(sql_store_url):
    originals = [json.loads(line) for line in UPSTREAM.read_text().splitlines()[:2]]
    broken = {k: v for k, v in originals[1].items() if k != "model"}  # no upgrade can name its workload
    records = [make_record(i) for i in range(5)]
    with open_store(sql_store_url) as store:
        store.append(records)
    make_original(sql_store_url, 2, originals[0])
    make_original(sql_store_url, 4, broken)
    with open_store(sql_store_url) as store:
        list(store.query())
        assert len(store.problems()) == 1  # the broken original cannot be read, and says so
        report = store.migrate()
    assert f"1 records rewritten in schema {SCHEMA_VERSION}" in report
    assert "1 rows could not be upgraded and were left as they were" in report
    assert ("backup at" in report) == sql_store_url.startswith("sqlite:")
    upgraded = record_from_dict(originals[0])
    with open_store(sql_store_url) as store:
        assert list(store.query()) == [records[0], upgraded, records[2], records[4]]  # row 4 stays unreadable
        assert store.count() == 4  # as query() reads: the unreadable row is left out, and reported
        assert len(store.columns()) == 4
        assert "not in the original system's format" in store.problems()[0].reason
