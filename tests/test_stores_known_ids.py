"""``Store.known_ids``: which records a store already holds (what ``amk corpus import`` skips).

Stores match by content first (workload, device, config, verdict, kind, latency) and hash only those,
so no call reads the whole store (``bench/stores_known_ids_reads.py`` counts what each call reads);
nothing is remembered between calls, so appends by other processes are seen. What every store must answer
(exactly the stored ids, not a near-miss) is amk.testing's store contract (tests/test_stores_contract.py);
these tests pin how the built-ins find them.
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


@pytest.mark.parametrize("kind", ("jsonl", *SQL_KINDS))
def test_a_multi_file_import_skips_exactly_the_records_the_store_or_an_earlier_file_holds(kind, three_files,
                                                                                            tmp_path, request):
    url = {"jsonl": f"jsonl:{tmp_path / 'corpus.jsonl'}", "sqlite": f"sqlite:{tmp_path / 'corpus.sqlite'}"}.get(kind) \
        or request.getfixturevalue("postgres_url")
    with open_store(url) as store:
        store.append([make_record(i) for i in range(60)])
    result = _import(url, *three_files)
    assert result.exit_code == 0, result.output
    assert "c.jsonl: imported 4 records" in result.output and "4 already in the store (skipped)" in result.output
    with open_store(url) as store:
        assert store.count() == 60 + 20


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
