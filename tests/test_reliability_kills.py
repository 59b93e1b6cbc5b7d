"""SIGKILL at a random moment of an import or a migration never corrupts the store: it reads, holds only whole
records (whole transactions in SQL), and nothing confirmed is lost. (Kills of tune runs and model saves:
test_reliability_tune.py.) A few kills each here; bench/reliability.py runs many (bench/RESULTS.md,
"Reliability")."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import amk_env
from reliability_worker import ORIGINAL
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.records import record_from_dict, record_to_json
from amk.formats import read_file

pytest_plugins = ["store_fixtures"]

TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "reliability_worker.py"
KILLS = 2


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=amk_env())


def kill_after(proc: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def check_whole(url: str, expected: set[str]) -> int:
    """The store reads, every record in it is one of ``expected`` (canonical JSON), the only problem allowed is
    a torn last line of a jsonl file (reported, and set aside by the next append); returns the count."""
    with open_store(url) as store:
        got = [record_to_json(r) for r in store.query()]
        problems = store.problems()
    assert set(got) <= expected
    assert all("incomplete last line" in p.reason or "torn line" in p.reason for p in problems), problems
    return len(got)


def test_an_import_killed_at_random_points_leaves_whole_records_and_whole_transactions(store_url, tmp_path):
    records = [make_record(i) for i in range(300)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(record_to_json(r) + "\n" for r in records))
    expected = {record_to_json(item.record) for item in read_file(source)}  # as imported: with their source line
    rng = random.Random(1)
    for _ in range(KILLS):
        kill_after(start("import-forever", store_url, str(source)), rng.uniform(1.0, 3.0))
        n = check_whole(store_url, expected)
        if not store_url.startswith("jsonl:"):
            assert n % len(records) == 0  # each import is one transaction: all of it or none
    with open_store(store_url) as store:  # and the store takes the next append as before
        store.append([make_record(999)])
        assert record_to_json(make_record(999)) in {record_to_json(r) for r in store.query()}


@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_migration_killed_at_random_points_loses_no_record(kind, tmp_path):
    path = tmp_path / f"c.{kind}"
    url = f"{kind}:{path}"
    upgraded = record_to_json(record_from_dict(ORIGINAL))
    rng = random.Random(2)
    for k in range(KILLS):
        keep = [record_to_json(make_record(i)) for i in range(50 * k, 50 * k + 50)]
        if kind == "jsonl":
            with path.open("a") as f:
                f.write("".join(json.dumps(ORIGINAL) + "\n" for _ in range(1500)) + "".join(line + "\n" for line in keep))
        else:
            import sqlite3

            with open_store(url) as store:  # then the last 1500 rows made rows of the original schema
                store.append([record_from_dict(json.loads(line)) for line in keep] + [record_from_dict(ORIGINAL)] * 1500)
            with sqlite3.connect(path) as conn:
                last = conn.execute("SELECT MAX(id) FROM amk_records").fetchone()[0]
                conn.execute("UPDATE amk_records SET schema_version = 0 WHERE id > ?", (last - 1500,))
                conn.execute("UPDATE amk_bodies SET body = ? WHERE id > ?", (json.dumps(ORIGINAL), last - 1500))
        with open_store(url) as store:
            before = sorted(record_to_json(r) for r in store.query())
        kill_after(start("migrate-forever", url), rng.uniform(0.8, 2.0))
        with open_store(url) as store:
            after = sorted(record_to_json(r) for r in store.query())
            assert store.problems() == []
        assert after == before  # every record, once, whether or not the migration finished
        assert upgraded in after
