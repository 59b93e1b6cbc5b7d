"""Every built-in store answers like the generic implementation over its records: same records, same order,
same filters, counts, columns, best configs and stats."""

from __future__ import annotations

import numpy as np
import pytest
from store_helpers import column_rows, make_record, unknown_device_record

from amk.core.columns import CorpusColumns
from amk.core.records import MeasurementKind, Verdict, record_to_json
from amk.core.store import CorpusQuery, CorpusStats, Store

pytest_plugins = ["store_fixtures"]

RECORDS = [make_record(i) for i in range(120)] + [unknown_device_record(i) for i in range(5)]
QUERIES = [
    CorpusQuery(),
    CorpusQuery(device="h100"),
    CorpusQuery(device="mystery-gpu"),
    CorpusQuery(device="no-such-device"),
    CorpusQuery(workload_kind="kernel_tuner"),
    CorpusQuery(workload_name="model-4096"),
    CorpusQuery(workload_shape=RECORDS[0].workload.shape),
    CorpusQuery(verdict=Verdict.FAIL),
    CorpusQuery(kind=MeasurementKind.PREDICTED),
    CorpusQuery(since=1.7e9 + 30, until=1.7e9 + 60),
    CorpusQuery(device="a100", workload_kind="decode", verdict=Verdict.PASS, kind=MeasurementKind.MEASURED),
]


@pytest.fixture
def filled(store):
    store.append(RECORDS[:60])
    store.append(RECORDS[60:])
    return store


def test_append_returns_the_count_and_an_empty_batch_appends_nothing(store):
    assert store.append(RECORDS[:7]) == 7
    assert store.append([]) == 0
    assert store.count() == 7


def test_records_come_back_identical_and_in_append_order(filled):
    assert [record_to_json(r) for r in filled.query()] == [record_to_json(r) for r in RECORDS]
    assert filled.problems() == []


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_query_and_count_match_the_generic_filter(filled, query):
    expected = [record_to_json(r) for r in RECORDS if query.matches(r)]
    assert [record_to_json(r) for r in filled.query(query)] == expected
    assert filled.count(query) == len(expected)


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_columns_hold_the_same_rows_as_columns_built_from_the_records(filled, query):
    expected = CorpusColumns.from_records(r for r in RECORDS if query.matches(r))
    assert column_rows(filled.columns(query)) == column_rows(expected)


def test_columns_intern_each_workload_device_and_config_once(filled):
    cols = filled.columns()
    assert len({w.key for w in cols.workloads}) == len(cols.workloads)
    assert len(cols.devices) == len(set(cols.devices)) == 4
    assert cols.workload_index.dtype == np.int32 and cols.latency_us.dtype == np.float64


@pytest.mark.parametrize("device", ["h100", "l4", "mystery-gpu", "absent"])
@pytest.mark.parametrize("per_workload", [1, 3])
def test_best_configs_match_the_generic_best_of(filled, device, per_workload):
    fast = filled.best_configs(device, per_workload=per_workload)
    generic = Store.best_configs(filled, device, per_workload=per_workload)
    assert column_rows(fast) == column_rows(generic)
    assert fast.workloads == generic.workloads and fast.configs == generic.configs


def test_best_configs_keep_only_the_fastest_pass_sample_of_each_config(filled):
    best = filled.best_configs("h100", per_workload=100, kinds=None)
    rows = column_rows(best)
    pairs = [(w, str(c)) for w, _, c, *_ in rows]
    assert len(pairs) == len(set(pairs))
    assert {r[5] for r in rows} == {list(Verdict).index(Verdict.PASS)}
    passing = [r for r in RECORDS if r.device.name == "h100" and r.measurement.verdict is Verdict.PASS]
    for w, _, cfg, latency, *_ in rows:
        samples = [r.measurement.latency_us for r in passing if r.workload.key == w and r.config == cfg]
        assert latency == min(samples)


def test_best_configs_limited_to_given_workloads_and_kind(filled):
    wanted = [w for w in filled.workloads("h100", "decode")][:1]
    best = filled.best_configs("h100", workloads=wanted, per_workload=2)
    assert best.workloads == wanted and len(best) == 2
    assert set(best.kind.tolist()) == {list(MeasurementKind).index(MeasurementKind.MEASURED)}
    assert len(filled.best_configs("h100", workloads=[], per_workload=2)) == 0


def test_workloads_lists_the_distinct_workloads_of_a_device(filled):
    for device, kind in (("h100", None), ("a100", "decode"), (None, "kernel_tuner"), ("absent", None)):
        expected = sorted({r.workload.key for r in RECORDS
                           if (device is None or r.device.name == device) and (kind is None or r.workload.kind == kind)})
        assert [w.key for w in filled.workloads(device, kind)] == expected


def test_stats_match_the_generic_counts(filled):
    assert filled.stats() == CorpusStats.of(RECORDS, problems=0)


def test_repeated_measurements_are_kept_as_samples(store):
    store.append([RECORDS[0]])
    store.append([RECORDS[0]])
    assert store.count() == 2
    assert len(store.best_configs(RECORDS[0].device.name, kinds=None)) == 1


def test_an_empty_store_answers_every_question(store):
    assert list(store.query()) == []
    assert store.count() == 0
    assert len(store.columns()) == 0
    assert len(store.best_configs("h100")) == 0
    assert store.workloads() == []
    assert store.stats().total == 0


def test_a_second_connection_sees_appends_made_through_the_first(store_url, store):
    from amk.core.config import open_store

    with open_store(store_url) as other:
        assert other.count() == 0
        store.append(RECORDS[:3])
        assert other.count() == 3
        assert len(other.columns()) == 3  # its cached unique tables refresh on a miss


def test_records_streamed_from_a_generator_keep_their_own_configs(store):
    # Objects freed while a generator runs can have their id() reused; configs must not get mixed up.
    def fresh():
        for i in range(300):
            yield make_record(i)

    store.append(fresh())
    assert [r.config for r in store.query()] == [make_record(i).config for i in range(300)]


def test_an_append_made_while_a_read_is_in_progress_is_kept(store_url, store):
    from amk.core.config import open_store

    store.append(RECORDS[:50])
    reading = store.query()
    next(reading)
    store.append(RECORDS[50:51])
    reading.close()  # a reader abandoned half-way must not take the append with it
    with open_store(store_url) as other:
        assert other.count() == 51
