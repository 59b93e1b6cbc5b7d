"""make_ranker, Prior and rank: untrained below MIN_ROWS_TO_RANK, same objects reordered, ties keep order."""

from __future__ import annotations

import numpy as np
import pytest

from amk.core.records import MeasurementKind
from amk.decode.schedule import ScheduleConfig
from amk.prior.ranking import MIN_ROWS_TO_RANK, Prior, make_ranker, rank
from tests.prior_helpers import (
    SMALL,
    decode,
    grid_configs,
    kernel,
    landscape_latency,
    landscape_records,
    record,
    schedule,
)

RANKERS = ["knn", "gbr", "lightgbm"]


def test_below_min_rows_the_prior_is_untrained_and_rank_changes_nothing():
    records = [record(kernel(), "a100", {"x": i}, 10.0 + i) for i in range(MIN_ROWS_TO_RANK - 1)]
    prior = make_ranker(records)
    candidates = [{"x": 4}, {"x": 0}, {"x": 2}]
    assert not prior.trained and prior.n_rows == MIN_ROWS_TO_RANK - 1
    assert rank(candidates, kernel(), "a100", prior=prior) == candidates
    assert np.isinf(prior.score(kernel(), "a100", candidates)).all()


def test_an_empty_corpus_gives_an_untrained_prior():
    prior = make_ranker([])
    assert not prior.trained and prior.uncertainty(kernel(), "a100", [{"x": 1}]) is None


def test_predicted_rows_do_not_count_towards_training_by_default():
    records = [record(kernel(), "a100", {"x": i}, 10.0 + i, kind=MeasurementKind.PREDICTED) for i in range(10)]
    assert not make_ranker(records).trained
    assert make_ranker(records, kinds=(MeasurementKind.PREDICTED,)).trained


@pytest.mark.parametrize("ranker", RANKERS)
def test_a_trained_prior_puts_the_best_configs_first(ranker):
    prior = make_ranker(landscape_records(), ranker=ranker)
    configs = grid_configs()
    ordered = rank(configs, kernel(), "a100", prior=prior)
    truth = sorted(landscape_latency(c, "a100") for c in configs)
    assert landscape_latency(ordered[0], "a100") <= truth[2]


@pytest.mark.parametrize("ranker", RANKERS)
def test_a_prior_ranks_a_device_it_has_never_seen(ranker):
    prior = make_ranker(landscape_records(devices=("a100", "a4000", "a6000")), ranker=ranker)
    ordered = rank(grid_configs(), kernel(), "h100", prior=prior)
    truth = sorted(landscape_latency(c, "h100") for c in grid_configs())
    assert landscape_latency(ordered[0], "h100") <= truth[2]


def test_rank_returns_the_same_objects_reordered():
    prior = make_ranker(landscape_records())
    configs = grid_configs()
    ordered = rank(configs, kernel(), "a100", prior=prior)
    assert sorted(map(id, ordered)) == sorted(map(id, configs))


def test_candidates_with_equal_scores_keep_their_input_order():
    prior = make_ranker(landscape_records())
    a, b, c = {"bx": 64, "tile": 3, "shmem": 1}, {"bx": 64, "tile": 3, "shmem": 1}, {"bx": 64, "tile": 3, "shmem": 1}
    assert [id(x) for x in rank([a, b, c], kernel(), "a100", prior=prior)] == [id(a), id(b), id(c)]


def test_rank_of_no_candidates_is_empty():
    assert rank([], kernel(), "a100", prior=make_ranker(landscape_records())) == []


def test_rank_trains_from_the_corpus_when_no_prior_is_given():
    configs = grid_configs()
    ordered = rank(configs, kernel(), "a100", landscape_records())
    assert ordered != configs and sorted(map(id, ordered)) == sorted(map(id, configs))


def test_schedule_configs_are_ranked_as_themselves():
    records = [record(decode("m"), "h100", schedule(n), float(n)) for n in (16, 32, 64, 128, 256, 512, 1024)]
    prior = make_ranker(records)
    big, small = ScheduleConfig(gemv_n_tile=1024), ScheduleConfig(gemv_n_tile=16)
    assert rank([big, small], decode("target", SMALL), "h100", prior=prior) == [small, big]


def test_knn_reports_an_uncertainty_per_candidate():
    prior = make_ranker(landscape_records(), ranker="knn")
    u = prior.uncertainty(kernel(), "a100", grid_configs())
    assert u.shape == (len(grid_configs()),) and (u >= 0).all()


def test_gbr_reports_no_uncertainty():
    assert make_ranker(landscape_records(), ranker="gbr").uncertainty(kernel(), "a100", grid_configs()) is None


def test_an_unknown_ranker_name_is_an_error_that_lists_the_known_ones():
    from amk.core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="knn"):
        make_ranker(landscape_records(), ranker="nope")


@pytest.mark.parametrize("ranker", RANKERS)
def test_a_saved_prior_loads_and_scores_the_same(tmp_path, ranker):
    prior = make_ranker(landscape_records(), ranker=ranker)
    prior.save(tmp_path / "prior")
    loaded = Prior.load(tmp_path / "prior")
    configs = grid_configs()
    assert np.allclose(loaded.score(kernel(), "a100", configs), prior.score(kernel(), "a100", configs))


def test_an_untrained_prior_refuses_to_be_saved(tmp_path):
    from amk.core.errors import AmkError

    with pytest.raises(AmkError, match="untrained"):
        make_ranker([]).save(tmp_path / "prior")


def test_loading_a_folder_without_a_prior_says_so(tmp_path):
    from amk.core.errors import AmkError

    with pytest.raises(AmkError, match="prior.json"):
        Prior.load(tmp_path)
