"""Hostile records (tests/hostile.py: huge integers, deep nesting, lone surrogates, NUL and control characters,
wrong types) through every entry point: a jsonl store's reads, the importer, a SQL store's reads, copy,
candidates files, backend options and tune state files. Each is at most one reported bad entry with its
neighbours kept, or one error naming where it came from; never a traceback. bench/reliability.py runs many
more of them (bench/RESULTS.md, "Reliability")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hostile import hostile_lines
from hypothesis import HealthCheck, given, settings
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.errors import AmkError, RecordError, StoreError
from amk.core.records import Record, record_from_dict, record_to_json
from amk.formats import read_file
from amk.stores.jsonl import JsonlStore

pytest_plugins = ["store_fixtures"]

EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
FIRST, LAST = record_to_json(make_record(100)), record_to_json(make_record(101))


def readable(line: str) -> bool:
    """Whether amk takes the hostile line as a record (some hostile values are legal: a control character)."""
    try:
        from amk.core.inputs import parse_json

        record_from_dict(parse_json(line.encode("utf-8", "surrogatepass")))
        return True
    except AmkError:
        return False


def corpus_with(path: Path, line: str) -> Path:
    path.write_bytes(f"{FIRST}\n{line}\n{LAST}\n".encode("utf-8", "surrogatepass"))
    return path


@EXAMPLES
@given(line=hostile_lines())
def test_a_jsonl_store_reads_the_neighbours_of_a_hostile_line_and_reports_it_once(tmp_path_factory, line):
    path = corpus_with(tmp_path_factory.mktemp("h") / "c.jsonl", line)
    ok = readable(line)
    for cache in (True, False):
        with JsonlStore(JsonlStore.Options(path=str(path), columns_cache=cache)) as store:
            got = [record_to_json(r) for r in store.query()]
            assert got[0] == FIRST and got[-1] == LAST and len(got) == 2 + ok
            assert len(store.problems()) == (0 if ok else 1)
            assert store.count() == len(got) and len(store.columns()) == len(got)
            stats = store.stats()
            assert (stats.total, stats.problems) == (len(got), 0 if ok else 1)


@EXAMPLES
@given(line=hostile_lines())
def test_the_importer_keeps_the_neighbours_of_a_hostile_line(tmp_path_factory, line):
    path = corpus_with(tmp_path_factory.mktemp("h") / "in.jsonl", line)
    items = list(read_file(path, "amk-jsonl"))
    records = [i for i in items if i.record is not None]
    problems = [i.problem for i in items if i.problem is not None]
    assert len(records) == 2 + readable(line) and len(problems) == 1 - readable(line)
    assert all(p.where == f"{path}:2" for p in problems)
    with open_store(f"sqlite:{path.with_suffix('.sqlite')}") as store:  # what is read is what every store holds
        assert store.append_new({str(i): item.record for i, item in enumerate(records)}) == len(records)
        assert store.count() == len(records)


@EXAMPLES
@given(line=hostile_lines())
def test_a_sqlite_row_holding_a_hostile_record_is_one_reported_problem(tmp_path_factory, line):
    url = f"sqlite:{tmp_path_factory.mktemp('h') / 'c.sqlite'}"
    with open_store(url) as store:
        store.append([make_record(100), make_record(7), make_record(101)])
    with sqlite3.connect(url.split(":", 1)[1]) as conn:  # the middle row rewritten behind amk's back
        conn.execute("UPDATE amk_records SET schema_version = 0 WHERE id = 2")
        conn.execute("UPDATE amk_bodies SET body = ? WHERE id = 2",
                     (line.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),))
    with open_store(url) as store:
        got = [record_to_json(r) for r in store.query()]
        assert got[0] == FIRST and got[-1] == LAST
        assert len(store.problems()) == 3 - len(got)
        assert store.count() == len(got) and len(store.columns()) == len(got)
        target = f"jsonl:{url.split(':', 1)[1]}.jsonl"
        with open_store(target) as copy:
            copy.append_new({str(i): r for i, r in enumerate(store.query())})
            assert copy.count() == len(got)


@EXAMPLES
@given(line=hostile_lines())
def test_a_hostile_candidate_or_option_is_one_error_never_a_traceback(tmp_path_factory, line):
    from amk.cli.prior_cmd import _read_candidates
    from amk.cli.tune_cmd import _backend_options
    from amk.core.config import structure_options
    from amk.rankers.knn import KNNRanker

    folder = tmp_path_factory.mktemp("h")
    (folder / "c.jsonl").write_bytes(f"{line}\n".encode("utf-8", "surrogatepass"))
    try:
        _read_candidates(str(folder / "c.jsonl"))
    except AmkError:
        pass
    try:
        raw = _backend_options((f"k={line}",))
        structure_options(KNNRanker.Options, raw, where="--backend-option", label="[ranker] 'knn'")
    except AmkError:
        pass


@EXAMPLES
@given(line=hostile_lines())
def test_a_hostile_tune_state_is_refused_naming_the_file(tmp_path_factory, line):
    from amk.core.errors import TuneStateError
    from amk.tuning.state import TuneState

    path = tmp_path_factory.mktemp("h") / "s.json"
    state = {"version": 1, "run_id": "r", "target": "t", "seed": 0, "rng_state": {}, "trials": [], "seed_queue": [],
             "warm_sources": [], "incumbent_key": None, "incumbent_us": None, "measurements": 0, "elapsed_s": 0.0,
             "sessions": 1, "stop_reason": None}
    key = ["seed", "elapsed_s", "measurements", "incumbent_us", "stop_reason", "trials"][len(line) % 6]
    text = json.dumps({**state, key: "\u2063"}).replace('"\\u2063"', line)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        TuneState.load(path, "t")  # some hostile values are legal here (a stop reason with a control character)
    except TuneStateError as exc:
        assert str(path) in str(exc)


def test_a_record_amk_cannot_store_is_refused_before_any_store_writes_it(store):
    import attrs

    good = make_record(0)
    for bad in ({"config": {"x": "\ud800"}}, {"config": {"x": 2**70}}, {"config": {"x": float("nan")}}):
        with pytest.raises(AmkError):
            store.append([good, attrs.evolve(good, **bad)])
    with pytest.raises(AmkError):
        Record(workload=good.workload, device=good.device, config={"n": "\x00"}, measurement=good.measurement,
               provenance=good.provenance)
    assert store.count() == 0


def test_a_lone_surrogate_read_from_jsonl_never_reaches_sqlite_or_postgres(store_url, tmp_path):
    source = corpus_with(tmp_path / "in.jsonl", FIRST.replace('"decode"', '"dec\\ud800ode"'))
    items = list(read_file(source, "amk-jsonl"))
    assert [i.problem.where for i in items if i.problem] == [f"{source}:2"]
    with open_store(store_url) as store:
        store.append([i.record for i in items if i.record])
        assert store.count() == 2 and store.problems() == []


def test_an_integer_over_python_s_digit_limit_in_a_line_is_one_problem(tmp_path):
    path = corpus_with(tmp_path / "c.jsonl", FIRST.replace('"pipelining_depth":', '"pipelining_depth":' + "9" * 5000 + ","
                                                           '"p2":', 1))
    with open_store(f"jsonl:{path}") as store:
        assert len(list(store.query())) == 2
        [problem] = store.problems()
        assert problem.where == f"{path}:2"
    with pytest.raises((RecordError, StoreError, AmkError)):
        record_from_dict({"schema_version": 1, "config": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})


def test_a_kernel_tuner_entry_with_a_string_latency_is_one_problem_not_a_failure(tmp_path):
    from tune_helpers import write_cache

    path = write_cache(tmp_path / "c.json", device_name="A100")
    data = json.loads(path.read_text())
    key = next(iter(data["cache"]))
    data["cache"][key]["time"] = "12"
    data["cache"][key].pop("times", None)
    huge = list(data["cache"])[1]
    data["cache"][huge]["block_size_x"] = "HUGE"
    path.write_text(json.dumps(data).replace('"HUGE"', "9" * 30))
    items = list(read_file(path))
    problems = [i.problem for i in items if i.problem is not None]
    assert [p.where for p in problems] == [f"{path}#{key}", f"{path}#{huge}"]
    assert "neither a number of milliseconds nor a failure marker" in problems[0].reason
    assert "outside the signed 64-bit range" in problems[1].reason
    assert len(items) - len(problems) == len(data["cache"]) - 2
