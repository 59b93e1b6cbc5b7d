"""Every built-in store keeps every record: concurrent writers, a writer killed mid-batch, malformed and
newer-schema entries (each reported where it is, never dropped, never taking its neighbours down)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import amk_env
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.errors import RecordError
from amk.core.records import record_from_dict, record_to_dict, record_to_json
from amk.formats import read_file

pytest_plugins = ["store_fixtures"]

TESTS = Path(__file__).resolve().parent


def start_writer(url: str, writer: int, n: int, batch: int, go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TESTS / "store_writer.py"), url, str(writer), str(n), str(batch), str(go)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=amk_env(extra_pythonpath=[str(TESTS)]))


def kind_of(url: str) -> str:
    return url.split(":", 1)[0].replace("postgresql", "postgres")


def execute_sql(url: str, statement: str) -> None:
    """Change a SQL store behind amk's back (what a bad tool, a disk fault or a newer amk could do)."""
    if kind_of(url) == "sqlite":
        with sqlite3.connect(url.split(":", 1)[1]) as conn:
            conn.execute(statement)
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)


@pytest.mark.slow
def test_eight_concurrent_writers_leave_exactly_40000_readable_records(store_url, tmp_path):
    go = tmp_path / "go"
    writers = [start_writer(store_url, w, 5000, 20 + 15 * w, go) for w in range(8)]
    go.touch()
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        assert out.split()[-1] == "5000"
    with open_store(store_url) as store:
        records = list(store.query())
        assert store.problems() == []
        assert store.count() == 40000
    assert len(records) == 40000
    seen = sorted((r.provenance.extra["writer"], r.provenance.extra["i"]) for r in records)
    assert seen == [(w, i) for w in range(8) for i in range(5000)]


def test_a_writer_killed_mid_batch_leaves_every_completed_record_readable(store_url, tmp_path):
    go = tmp_path / "go"
    go.touch()
    batch = 400
    writer = start_writer(store_url, 0, 40000, batch, go)
    acknowledged = 0
    for line in writer.stdout:
        acknowledged = int(line)
        if acknowledged >= 3 * batch:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=60)
    assert acknowledged >= 3 * batch

    with open_store(store_url) as store:
        records = list(store.query())
        problems = store.problems()
        # Completed records are all there, in order, whole; at most the batch being written is missing.
        assert len(records) >= acknowledged
        assert [r.provenance.extra["i"] for r in records] == list(range(len(records)))
        if kind_of(store_url) == "jsonl":
            # A torn last line, if the kill landed mid-write, is reported, not read and not hidden.
            assert len(problems) <= 1
            assert all("incomplete last line" in p.reason for p in problems)
        else:
            assert problems == []
            assert len(records) % batch == 0  # a batch is one transaction: all of it or none
        assert store.append([make_record(0, writer=9)]) == 1
        after = list(store.query())
        assert len(after) == len(records) + 1
        if kind_of(store_url) == "jsonl" and problems:
            assert ".torn" in store.problems()[0].where


def test_a_torn_last_line_is_reported_then_set_aside_by_the_next_append(tmp_path):
    path = tmp_path / "corpus.jsonl"
    with open_store(f"jsonl:{path}") as store:
        store.append([make_record(i) for i in range(3)])
        fragment = record_to_json(make_record(3)).encode()[:57]
        with path.open("ab") as f:
            f.write(fragment)  # what a writer killed mid-write leaves
        assert len(list(store.query())) == 3
        [problem] = store.problems()
        assert problem.where == f"{path}:4" and "incomplete last line" in problem.reason
        assert store.stats().problems == 1

        store.append([make_record(4)])
        assert [r.provenance.extra["i"] for r in store.query()] == [0, 1, 2, 4]
        assert path.with_name("corpus.jsonl.torn").read_bytes() == fragment + b"\n"
        [problem] = store.problems()
        assert problem.where == f"{path}.torn:1" and "re-measure" in problem.reason


def test_jsonl_fsync_option_appends_durably(tmp_path):
    from amk.stores.jsonl import JsonlStore

    store = JsonlStore(JsonlStore.Options(path=str(tmp_path / "c.jsonl"), fsync=True))
    assert store.append([make_record(1), make_record(2)]) == 2
    assert store.count() == 2


# -- malformed entries ------------------------------------------------------------------------------

_PATHS = [("schema_version",), ("workload",), ("workload", "kind"), ("workload", "shape"), ("device",),
          ("device", "name"), ("device", "sm_count"), ("config",), ("measurement",), ("measurement", "verdict"),
          ("measurement", "kind"), ("measurement", "latency_us"), ("measurement", "samples"), ("provenance",),
          ("provenance", "backend"), ("provenance", "timestamp")]
_BAD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=8), st.lists(st.integers(), max_size=2), st.just({"x": 1}))


@st.composite
def malformed_line(draw) -> str:
    """A line that is not a valid record: garbage, a non-object, or a valid record with one field broken."""
    how = draw(st.sampled_from(["garbage", "not_object", "delete", "replace", "extra_key"]))
    if how == "garbage":
        text = draw(st.text(min_size=1, max_size=40).filter(lambda t: "\n" not in t and "\r" not in t and t.strip()))
        try:
            assume(not isinstance(json.loads(text), dict))
        except ValueError:
            pass
        return text
    if how == "not_object":
        return json.dumps(draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.text(max_size=5))))
    data = record_to_dict(make_record(draw(st.integers(0, 50))))
    path = draw(st.sampled_from(_PATHS))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if how == "delete":
        assume(path[-1] not in ("schema_version",))
        del parent[path[-1]]
    elif how == "replace":
        parent[path[-1]] = draw(_BAD_VALUES)
    else:
        parent[draw(st.sampled_from(["color", "zz", "latency"]))] = 1
    try:
        record_from_dict(data)
    except RecordError:
        return json.dumps(data)
    assume(False)
    raise AssertionError("unreachable")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.lists(malformed_line(), min_size=1, max_size=4))
def test_fuzzed_malformed_records_are_rejected_with_their_line_and_neighbours_kept(store, tmp_path, bad):
    lines, bad_lines, good = [], [], []
    for j, line in enumerate(bad):
        good.append(make_record(100 + j))
        lines.append(record_to_json(good[-1]))
        lines.append(line)
        bad_lines.append(len(lines))
    good.append(make_record(999))
    lines.append(record_to_json(good[-1]))
    source = tmp_path / "incoming.jsonl"
    source.write_text("\n".join(lines) + "\n")

    before = store.count()
    items = list(read_file(source, "amk-jsonl"))
    problems = [i.problem for i in items if i.problem is not None]
    store.append([i.record for i in items if i.record is not None])

    assert [p.where for p in problems] == [f"{source}:{n}" for n in bad_lines]
    assert all(p.reason for p in problems)
    assert store.count() == before + len(good)
    stored = list(store.query())[before:]
    assert [r.provenance.extra for r in stored] == [r.provenance.extra for r in good]


def _corrupt_second_entry(url: str, replacement: str) -> str:
    """Replace the second stored entry with ``replacement`` (a raw line or body); returns where it is."""
    if kind_of(url) == "jsonl":
        path = Path(url.split(":", 1)[1])
        lines = path.read_text().splitlines(keepends=True)
        lines[1] = replacement + "\n"
        path.write_text("".join(lines))
        return f"{path}:2"
    execute_sql(url, f"UPDATE amk_bodies SET body = '{replacement}' WHERE id = (SELECT MIN(id) + 1 FROM amk_bodies)")
    return "#2"


@pytest.mark.parametrize("replacement", ['{"measurement": 7', '["not", "an", "object"]'])
def test_a_corrupt_entry_inside_a_store_is_reported_where_it_is_and_neighbours_stay_readable(store_url, replacement):
    with open_store(store_url) as store:
        store.append([make_record(i) for i in range(4)])
    where = _corrupt_second_entry(store_url, replacement)
    with open_store(store_url) as store:
        assert [r.provenance.extra["i"] for r in store.query()] == [0, 2, 3]
        [problem] = store.problems()
        assert problem.where.endswith(where)
        assert store.stats().problems == 1


def test_a_record_from_a_newer_schema_is_refused_with_a_clear_error_and_kept(store_url):
    with open_store(store_url) as store:
        store.append([make_record(i) for i in range(3)])
    if kind_of(store_url) == "jsonl":
        path = Path(store_url.split(":", 1)[1])
        data = record_to_dict(make_record(7))
        data["schema_version"] = 99
        with path.open("a") as f:
            f.write(json.dumps(data) + "\n")
    else:
        execute_sql(store_url, "UPDATE amk_records SET schema_version = 99 WHERE id = (SELECT MAX(id) FROM amk_records)")
    with open_store(store_url) as store:
        readable = list(store.query())
        [problem] = store.problems()
        assert "schema_version 99" in problem.reason and "upgrade amk" in problem.reason
        assert store.stats().problems == 1
        store.append([make_record(8)])
        assert len(list(store.query())) == len(readable) + 1
        assert len(store.problems()) == 1  # still there, still reported: never dropped
    assert len(readable) == (3 if kind_of(store_url) == "jsonl" else 2)


def test_importing_a_record_from_a_newer_schema_names_the_file_and_line(tmp_path):
    data = record_to_dict(make_record(1))
    data["schema_version"] = 5
    source = tmp_path / "new.jsonl"
    source.write_text(record_to_json(make_record(0)) + "\n" + json.dumps(data) + "\n")
    items = list(read_file(source, "amk-jsonl"))
    assert items[0].record is not None
    assert items[1].problem.where == f"{source}:2"
    assert "newer amk" in items[1].problem.reason


def test_a_jsonl_append_waiting_for_the_lock_lands_in_the_file_that_replaced_it(tmp_path):
    import fcntl
    import threading
    import time

    path = tmp_path / "c.jsonl"
    with open_store(f"jsonl:{path}") as store:
        store.append([make_record(0)])
        with path.open("ab") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as `amk corpus migrate` holds it while rewriting
            writer = threading.Thread(target=store.append, args=([make_record(1)],))
            writer.start()
            time.sleep(0.3)
            rewritten = tmp_path / "c.jsonl.migrating"
            rewritten.write_bytes(path.read_bytes())
            os.replace(rewritten, path)
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        writer.join(timeout=10)
        assert [r.provenance.extra["i"] for r in store.query()] == [0, 1]
