"""Races between real processes: the same file imported by several at once, migrations racing an appender,
two tune runs of one target. Each store is a real one (a SQLite file, a real PostgreSQL server). The
large versions of these loops are bench/reliability.py (figures in bench/RESULTS.md, "Reliability")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import amk_env
from reliability_worker import ORIGINAL
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.records import record_id, record_to_json

pytest_plugins = ["store_fixtures"]

TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "reliability_worker.py"


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=amk_env())


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, *out) for p, out in zip(procs, outputs)]


def test_four_processes_importing_one_file_at_once_store_each_record_once(store_url, tmp_path):
    source = tmp_path / "measured.jsonl"
    records = [make_record(i) for i in range(300)]
    source.write_text("".join(record_to_json(r) + "\n" for r in records))
    go = tmp_path / "go"
    procs = [start("import", store_url, str(source), str(go)) for _ in range(4)]
    go.touch()
    results = finish(procs)
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    with open_store(store_url) as store:
        ids = [record_id(r) for r in store.query()]
    assert len(ids) == len(set(ids)) == 300  # every record once: no duplicate, none missing
    imported = sum(int(out.split("imported ")[1].split()[0]) for _, out, _ in results)
    assert imported == 300  # and the four reports add up: each record was imported by exactly one process


@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_two_migrations_racing_an_appender_lose_no_confirmed_append(kind, tmp_path):
    path = tmp_path / f"corpus.{kind}"
    url = f"{kind}:{path}"
    original = ORIGINAL
    if kind == "jsonl":
        path.write_text("".join(json.dumps(original) + "\n" for _ in range(2000)))
    else:
        from amk.core.records import record_from_dict

        with open_store(url) as store:  # rows of the original schema, as an earlier store held them
            store.append([record_from_dict(original)] * 2000)
        import sqlite3

        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE amk_records SET schema_version = 0")
            conn.execute("UPDATE amk_bodies SET body = ?", (json.dumps(original),))
    go, confirmed = tmp_path / "go", tmp_path / "confirmed.txt"
    appender = start("append", url, str(go), "300", str(confirmed), "old")
    migrators = [start("migrate", url, str(go)) for _ in range(3)]
    go.touch()
    results = finish([appender, *migrators])
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    done = [int(line) for line in confirmed.read_text().split()]
    assert done == list(range(300))
    with open_store(url) as store:
        held = {record_id(r) for r in store.query()}
        assert store.problems() == []
    lost = [i for i in done if record_id(make_record(i, writer=7)) not in held]
    assert lost == []


def test_a_migration_of_a_current_store_says_so_and_writes_nothing(run_amk, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(record_to_json(make_record(0)) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_amk("--store", f"jsonl:{path}", "corpus", "migrate")
    assert done.returncode == 0, done.stderr
    assert "already in schema" in done.stdout and "nothing written" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no backup, no temporary file


def test_two_tune_runs_of_one_target_at_once_the_second_is_refused(tmp_path):
    from amk.core.errors import TuneStateError
    from amk.tuning.state import run_lock

    state = tmp_path / "t.state.json"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from amk.tuning.state import run_lock\n"
        f"with run_lock(Path({str(state)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env=amk_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TuneStateError, match="another amk tune run of this target") as info, run_lock(state):
            pass
        assert str(holder.pid) in str(info.value) and "--state" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    with run_lock(state):  # a killed run never leaves its lock held
        pass


def test_amk_tune_refuses_a_second_run_of_the_same_target(run_amk, tmp_path):
    from amk.tuning.state import run_lock

    shape = "hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256"
    args = ("tune", "--workload", "decode:m", "--shape", shape, "--device", "h100", "--backend", "roofline",
            "--budget", "2", "--state", "run.state.json")
    with run_lock(tmp_path / "run.state.json"):  # as a run in progress holds it
        done = run_amk(*args)
    assert done.returncode == 1
    assert "amk: error: another amk tune run of this target" in done.stderr and "Traceback" not in done.stderr
