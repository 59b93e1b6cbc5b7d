"""``Store.known_ids``: which records a store already holds (what ``amk corpus import`` skips).

Stores match by content first (workload, device, config, verdict, kind, latency) and hash only those,
so no call reads the whole store; nothing is remembered between calls, so appends by other processes
are seen. What every store must answer (exactly the stored ids, not a near-miss) is amk.testing's store
contract (tests/test_stores_contract.py); these tests pin how the built-ins find them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from conftest import amk_env
from store_helpers import make_record

import amk.cli
from amk.core.config import open_store
from amk.core.records import Record, record_id, record_to_json
from amk.core.store import match_key
from amk.stores import sql
from amk.stores.jsonl import JsonlStore

pytest_plugins = ["store_fixtures"]

TESTS = Path(__file__).resolve().parent
SQL_KINDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def by_id(records: list[Record]) -> dict[str, Record]:
    return {record_id(r): r for r in records}


def distinct_record(i: int) -> Record:
    """``make_record(i)`` with a config of its own: no other record shares its workload, device and config."""
    record = make_record(i)
    return attrs.evolve(record, config={**record.config, "n": i})


@pytest.fixture(params=SQL_KINDS)
def sql_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'corpus.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the SQL rows turned into records (and so hashed) while the test runs."""
    seen: list[int] = []
    original = sql.read_record

    def counting(tables, row, where):
        seen.append(row[0])
        return original(tables, row, where)

    monkeypatch.setattr(sql, "read_record", counting)
    return seen


@pytest.fixture
def lines_parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The line numbers of jsonl corpora parsed by full or incremental reads while the test runs."""
    seen: list[int] = []
    original = JsonlStore._read_lines

    def counting(self, f, start=0, first_lineno=1, **kw):
        for item in original(self, f, start, first_lineno, **kw):
            seen.append(item[0])
            yield item

    monkeypatch.setattr(JsonlStore, "_read_lines", counting)
    return seen


def test_known_ids_see_records_another_process_appended_between_two_calls(store_url, tmp_path):
    theirs = [make_record(i, writer=7) for i in range(3)]
    go = tmp_path / "go"
    go.touch()
    with open_store(store_url) as store:
        store.append([make_record(0)])
        assert store.known_ids(by_id(theirs)) == set()
        writer = subprocess.run(
            [sys.executable, str(TESTS / "store_writer.py"), store_url, "7", "3", "3", str(go)],
            capture_output=True, text=True, env=amk_env(extra_pythonpath=[str(TESTS)]), timeout=120)
        assert writer.returncode == 0, writer.stderr
        assert store.known_ids(by_id(theirs)) == set(by_id(theirs))


def test_sql_known_ids_read_no_stored_row_when_no_record_can_match(sql_store_url, rows_read):
    with open_store(sql_store_url) as store:
        store.append([make_record(i) for i in range(60)])
        rows_read.clear()
        assert store.known_ids(by_id([distinct_record(i) for i in range(60, 70)])) == set()
    assert rows_read == []


def test_sql_known_ids_read_only_rows_with_the_same_workload_device_config_verdict_kind_and_latency(sql_store_url,
                                                                                                 rows_read):
    records = [make_record(i) for i in range(60)]
    with open_store(sql_store_url) as store:
        store.append(records)
        rows_read.clear()
        assert store.known_ids(by_id([records[5]])) == {record_id(records[5])}
    same_key = [i + 1 for i, r in enumerate(records) if match_key(r) == match_key(records[5])]
    assert sorted(rows_read) == same_key


def test_jsonl_known_ids_parse_only_the_lines_appended_since_the_last_read(tmp_path, lines_parsed):
    with open_store(f"jsonl:{tmp_path / 'c.jsonl'}") as store:
        store.append([make_record(i) for i in range(40)])
        assert store.known_ids(by_id([make_record(100)])) == set()
        assert len(lines_parsed) == 40  # the first read fills the columns cache
        store.append([make_record(i) for i in range(40, 45)])
        lines_parsed.clear()
        assert store.known_ids(by_id([make_record(42), make_record(100)])) == {record_id(make_record(42))}
    assert lines_parsed == [41, 42, 43, 44, 45]


def test_jsonl_known_ids_without_the_columns_cache_read_the_file_and_answer_the_same(tmp_path):
    with JsonlStore(JsonlStore.Options(path=str(tmp_path / "c.jsonl"), columns_cache=False)) as store:
        store.append([make_record(i) for i in range(10)])
        assert store.known_ids(by_id([make_record(i) for i in range(8, 12)])) == set(by_id([make_record(8),
                                                                                             make_record(9)]))
    assert not (tmp_path / "c.jsonl.columns.npz").exists()


def _write_jsonl(path: Path, numbers: list[int]) -> str:
    path.write_text("".join(record_to_json(distinct_record(i)) + "\n" for i in numbers))
    return str(path)


def _import(url: str, *files: str):
    return CliRunner().invoke(amk.cli.main, ["--store", url, "corpus", "import", *files], catch_exceptions=False)


@pytest.fixture
def three_files(tmp_path: Path) -> list[str]:
    # Records that name their source (i % 3 != 0), so the same record reads the same from either file;
    # the third file repeats four records of the first.
    numbers = [i for i in range(100, 200) if i % 3][:20]
    return [_write_jsonl(tmp_path / "a.jsonl", numbers[:8]), _write_jsonl(tmp_path / "b.jsonl", numbers[8:16]),
            _write_jsonl(tmp_path / "c.jsonl", numbers[:4] + numbers[16:20])]


def _import_into_a_store_of_60(url: str, files: list[str], reads: list[int]) -> None:
    """Import ``files`` into a store that holds 60 records, counting in ``reads`` from the import's start."""
    with open_store(url) as store:
        store.append([make_record(i) for i in range(60)])
    reads.clear()
    result = _import(url, *files)
    assert result.exit_code == 0, result.output
    assert "c.jsonl: imported 4 records" in result.output and "4 already in the store (skipped)" in result.output


def test_a_multi_file_import_into_jsonl_reads_the_existing_store_once(tmp_path, three_files, lines_parsed):
    _import_into_a_store_of_60(f"jsonl:{tmp_path / 'corpus.jsonl'}", three_files, lines_parsed)
    store_lines = [n for n in lines_parsed if n <= 60]
    assert sorted(store_lines) == list(range(1, 61))  # each stored line once, then only what the import added


def test_a_multi_file_import_into_a_sql_store_hashes_only_records_it_may_repeat(sql_store_url, three_files, rows_read):
    _import_into_a_store_of_60(sql_store_url, three_files, rows_read)
    assert all(row > 60 for row in rows_read)  # no record that was in the store before the import
    assert len(rows_read) == 4  # the four repeated records' rows, once


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
