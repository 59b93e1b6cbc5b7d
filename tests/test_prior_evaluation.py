"""Offline evaluation: the metrics, the pooled-replay baseline and the leave-one-out folds."""

from __future__ import annotations

import numpy as np
import pytest

from amk.core.ranker import Ranker
from amk.prior.evaluation import (
    POOLED_REPLAY,
    evaluate,
    pooled_replay_scores,
    ranking_metrics,
    spearman,
    summarize,
)
from amk.prior.training import load_points
from tests.prior_helpers import kernel, landscape_records, record


def test_a_perfect_order_scores_one_everywhere():
    latency = np.array([3.0, 1.0, 2.0, 4.0])
    m = ranking_metrics(latency.copy(), latency)
    assert m == {"top1": 1.0, "top5": 1.0, "top20": 1.0, "spearman": 1.0, "ndcg10": 1.0, "evals_to_5pct": 1}


def test_a_reversed_order_finds_the_best_last():
    latency = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    m = ranking_metrics(-latency, latency)
    assert m["top1"] == pytest.approx(1 / 32) and m["top5"] == pytest.approx(1 / 2)
    assert m["evals_to_5pct"] == 6 and m["spearman"] == pytest.approx(-1.0)


def test_equal_scores_are_measured_in_corpus_order():
    latency = np.array([2.0, 1.0])
    assert ranking_metrics(np.zeros(2), latency)["evals_to_5pct"] == 2


def test_spearman_of_a_constant_is_zero():
    assert spearman(np.ones(4), np.arange(4.0)) == 0.0


def test_pooled_replay_orders_by_mean_relative_latency_and_puts_unseen_configs_last():
    w = kernel()
    records = [record(w, "a4000", {"x": 1}, 10.0), record(w, "a4000", {"x": 2}, 30.0),
               record(w, "a6000", {"x": 1}, 40.0), record(w, "a6000", {"x": 2}, 20.0),
               record(w, "a100", {"x": 3}, 1.0)]
    data = load_points(records)
    train = data.take(data.columns.device_index != data.columns.devices.index(records[-1].device))
    scores = pooled_replay_scores(train, np.array([0, 1, 2]))
    assert scores.tolist() == pytest.approx([1.5, 2.0, np.inf])


def test_leave_one_device_out_reports_every_ranker_on_every_held_out_group():
    results = evaluate(landscape_records(), splits=("device",), rankers=("knn",))
    assert {(r.ranker, r.heldout) for r in results} == {
        (name, d) for name in (POOLED_REPLAY, "knn") for d in ("a100", "a4000", "a6000")}
    assert all(0 < r.top1 <= r.top5 <= r.top20 <= 1 for r in results)


def test_leave_one_workload_out_holds_out_each_workload():
    records = landscape_records(name="conv") + landscape_records(name="conv2")
    results = evaluate(records, splits=("workload",), rankers=("knn",), baseline=False)
    assert {r.heldout for r in results} == {"kernel_tuner:conv", "kernel_tuner:conv2"}


def test_a_fold_whose_training_side_is_too_small_is_left_out():
    records = ([record(kernel(), "a100", {"x": i}, 1.0 + i) for i in range(10)]
               + [record(kernel(), "a4000", {"x": i}, 1.0 + i) for i in range(3)])
    results = evaluate(records, splits=("device",), rankers=("knn",))
    # Holding out a100 leaves 3 training rows (< MIN_ROWS_TO_RANK): only the a4000 fold is evaluated.
    assert {r.heldout for r in results} == {"a4000"}


def test_summary_is_the_mean_per_ranker():
    results = evaluate(landscape_records(), splits=("device",), rankers=("knn",))
    summary = {s["ranker"]: s for s in summarize(results)}
    knn = [r.top5 for r in results if r.ranker == "knn"]
    assert summary["knn"]["top5"] == pytest.approx(np.mean(knn)) and summary["knn"]["groups"] == 3


class _CountingRanker(Ranker):
    """Remembers how many rows each fit saw; scores every candidate alike."""

    name = "counting"

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.fitted_rows: list[int] = []

    def fit(self, X, y, groups=None):
        self.fitted_rows.append(len(X))
        return self

    def predict(self, X):
        return np.zeros(len(X))


def test_leave_one_target_out_keeps_the_workload_elsewhere_and_the_device_on_other_workloads():
    records = landscape_records(name="conv") + landscape_records(name="conv2")
    counting = _CountingRanker()
    results = evaluate(records, splits=("target",), rankers=(counting,), baseline=False)
    groups = {(r.workload, r.device) for r in results}
    assert len(results) == len(groups) == 6  # 2 workloads x 3 devices, each held out once
    assert {r.heldout for r in results} == {f"{w} on {d}" for w, d in groups}
    per_group = len(records) // 6
    assert counting.fitted_rows == [len(records) - per_group] * 6  # only the target's own rows left out
