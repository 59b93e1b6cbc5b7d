"""The built-in rankers: each meets amk.testing's ranker contract (sklearn-like fit/predict, NotFittedError,
data-only save and load); then what each one does of its own."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from amk.core.errors import ModelFileError
from amk.core.plugins import create, get_registry
from amk.core.ranker import Ranker
from amk.rankers.gbr import GradientBoostingRanker
from amk.rankers.knn import KNNRanker
from amk.rankers.lightgbm import LightGBMRanker, relevance
from amk.testing import parametrize_with_checks, ranker_checks

RANKERS = ["knn", "gbr", "lightgbm"]
CONTRACT_RANKERS = [*RANKERS, "replay"]


def _data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 3))
    y = X[:, 0] ** 2 + 0.5 * X[:, 1]
    return X, y, np.repeat(np.arange(n // 50), 50)


@parametrize_with_checks([c for name in CONTRACT_RANKERS
                          for c in ranker_checks(functools.partial(create, Ranker, name), label=name)])
def test_a_built_in_ranker_meets_the_ranker_contract(check):
    check()


@pytest.mark.parametrize("name", RANKERS)
def test_fit_learns_an_order_that_correlates_with_the_target(name):
    X, y, groups = _data()
    ranker = get_registry().create(Ranker, name).fit(X, y, groups)
    Xt, yt, _ = _data(seed=1)
    assert np.corrcoef(ranker.predict(Xt), yt)[0, 1] > 0.8


@pytest.mark.parametrize("name", RANKERS)
def test_a_saved_model_names_its_ranker(tmp_path, name):
    X, y, groups = _data()
    get_registry().create(Ranker, name).fit(X, y, groups).save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["ranker"] == name


def test_loading_another_rankers_model_is_refused(tmp_path):
    X, y, _ = _data()
    KNNRanker().fit(X, y).save(tmp_path / "m")
    with pytest.raises(ModelFileError, match="'knn' model"):
        GradientBoostingRanker.load(tmp_path / "m")


def test_loading_a_missing_model_says_what_is_missing(tmp_path):
    with pytest.raises(ModelFileError, match="no model.json"):
        KNNRanker.load(tmp_path)


def test_knn_an_exact_match_does_not_drown_the_other_neighbours():
    # The reference weighted by 1/(d + 1e-6): the exact match's target (1.0) would come back unchanged.
    X = np.array([[0.0], [0.1], [-0.1], [0.1], [-0.1], [5.0]])
    y = np.array([1.0, 3.0, 3.0, 3.0, 3.0, 0.0])
    prediction = KNNRanker(KNNRanker.Options(k=5)).fit(X, y).predict(np.array([[0.0]]))[0]
    assert 1.5 < prediction < 3.0


def test_knn_exact_duplicates_get_equal_weights():
    X = np.zeros((4, 2))
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert KNNRanker(KNNRanker.Options(k=4)).fit(X, y).predict(np.zeros((1, 2)))[0] == pytest.approx(2.5)


def test_knn_fits_on_at_most_max_rows():
    X, y, _ = _data(n=500)
    assert len(KNNRanker(KNNRanker.Options(max_rows=100)).fit(X, y).y_) == 100


def test_gbr_numpy_trees_predict_like_scikit_learn():
    from sklearn.ensemble import GradientBoostingRegressor

    from amk.rankers.gbr import export_gradient_boosting

    X, y, _ = _data()
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X.astype(np.float32), y)
    assert np.allclose(export_gradient_boosting(model).predict(X), model.predict(X.astype(np.float32)))


def test_lightgbm_lambdarank_orders_within_groups_and_scores_lower_as_better():
    X, y, groups = _data()
    ranker = LightGBMRanker(LightGBMRanker.Options(objective="lambdarank", n_estimators=50)).fit(X, y, groups)
    Xt, yt, _ = _data(seed=1)
    assert np.corrcoef(ranker.predict(Xt), yt)[0, 1] > 0.5


def test_lightgbm_lambdarank_accepts_groups_larger_than_lightgbms_query_limit():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(10_050, 2))
    y = X[:, 0]
    ranker = LightGBMRanker(LightGBMRanker.Options(objective="lambdarank", n_estimators=3)).fit(X, y, np.zeros(len(y)))
    assert ranker.predict(X[:5]).shape == (5,)


def test_lightgbm_unknown_objective_is_a_config_error():
    from amk.core.errors import ConfigError

    with pytest.raises(ConfigError, match="objective 'nope'"):
        LightGBMRanker.Options(objective="nope")


def test_relevance_grades_the_best_highest_and_drops_one_per_five_percent():
    assert relevance(np.log([1.0, 1.06, 1.2, 100.0])).tolist() == [20, 19, 17, 0]


def test_knn_uncertainty_after_predict_of_the_same_rows_matches_a_fresh_ranker():
    X, y, _ = _data()
    warm = KNNRanker().fit(X, y)
    warm.predict(X[:20])
    assert np.array_equal(warm.predict_uncertainty(X[:20]), KNNRanker().fit(X, y).predict_uncertainty(X[:20]))
    assert np.array_equal(warm.predict(X[20:40]), KNNRanker().fit(X, y).predict(X[20:40]))
