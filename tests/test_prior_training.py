"""load_points: which rows train the prior, and a target comparable across workloads and devices."""

from __future__ import annotations

import numpy as np
import pytest

from amk.core.columns import CorpusColumns
from amk.core.records import MeasurementKind, Verdict
from amk.prior.training import load_points
from amk.stores.jsonl import JsonlStore
from tests.prior_helpers import kernel, record


def test_empty_corpus_gives_an_empty_training_set():
    points = load_points([])
    assert len(points) == 0 and points.skipped == 0


def test_only_measured_pass_rows_train_by_default():
    w = kernel()
    records = [
        record(w, "a100", {"x": 1}, 10.0),
        record(w, "a100", {"x": 2}, 20.0, kind=MeasurementKind.PREDICTED),
        record(w, "a100", {"x": 3}, None, verdict=Verdict.FAIL),
        record(w, "a100", {"x": 4}, 30.0, kind=MeasurementKind.REPLAYED),
    ]
    points = load_points(records)
    assert [points.columns.configs[i] for i in points.columns.config_index] == [{"x": 1}]


def test_predicted_rows_train_only_when_asked_for():
    w = kernel()
    records = [record(w, "a100", {"x": 1}, 10.0), record(w, "a100", {"x": 2}, 20.0, kind=MeasurementKind.PREDICTED)]
    points = load_points(records, kinds=(MeasurementKind.MEASURED, MeasurementKind.PREDICTED))
    assert len(points) == 2


def test_rows_of_asked_verdicts_without_a_latency_are_counted_as_skipped():
    records = [record(kernel(), "a100", {"x": 1}, 10.0), record(kernel(), "a100", {"x": 2}, None, verdict=Verdict.FAIL)]
    points = load_points(records, verdicts=(Verdict.PASS, Verdict.FAIL))
    assert len(points) == 1 and points.skipped == 1


def test_device_filter_keeps_only_that_device():
    records = [record(kernel(), "a100", {"x": 1}, 10.0), record(kernel(), "a4000", {"x": 1}, 30.0)]
    points = load_points(records, device="a4000")
    assert [points.columns.devices[i].name for i in points.columns.device_index] == ["a4000"]


def test_target_is_latency_relative_to_the_best_of_the_same_workload_and_device():
    w = kernel()
    records = [record(w, "a100", {"x": 1}, 10.0), record(w, "a100", {"x": 2}, 25.0),
               record(w, "a4000", {"x": 1}, 40.0), record(w, "a4000", {"x": 2}, 20.0)]
    points = load_points(records)
    assert points.target.tolist() == pytest.approx([1.0, 2.5, 2.0, 1.0])
    assert len(points.group_keys) == 2


def test_target_is_comparable_across_workloads_of_different_scale():
    fast, slow = kernel("fast"), kernel("slow")
    records = [record(fast, "a100", {"x": 1}, 1.0), record(fast, "a100", {"x": 2}, 2.0),
               record(slow, "a100", {"x": 1}, 1000.0), record(slow, "a100", {"x": 2}, 2000.0)]
    points = load_points(records)
    assert points.target.tolist() == pytest.approx([1.0, 2.0, 1.0, 2.0])


def test_a_store_its_columns_and_its_records_load_the_same(tmp_path):
    records = [record(kernel(), "a100", {"x": i}, 10.0 + i) for i in range(5)]
    store = JsonlStore(JsonlStore.Options(path=str(tmp_path / "c.jsonl")))
    store.append(records)
    from_store = load_points(store)
    from_columns = load_points(CorpusColumns.from_records(records))
    from_records = load_points(records)
    for points in (from_columns, from_records):
        assert np.array_equal(points.target, from_store.target)


def test_a_torn_line_in_the_store_does_not_stop_loading(tmp_path):
    path = tmp_path / "c.jsonl"
    store = JsonlStore(JsonlStore.Options(path=str(path)))
    store.append([record(kernel(), "a100", {"x": i}, 10.0 + i) for i in range(3)])
    with path.open("a") as f:
        f.write('{"schema_version": 1, "workl')
    points = load_points(store)
    assert len(points) == 3
    assert len(store.problems()) == 1
