"""The ensemble policy: the zero-shot order first, then whichever models rank the run's own results best."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from amk.tuning.ensemble import EnsemblePolicy, misordered, ranking_weights
from amk.tuning.policy import make_policy

N = 40
X = np.arange(N, dtype=np.float64)[:, None]
NO_PRIOR = np.full(N, np.inf)


def policy(base: np.ndarray, zero_shot: np.ndarray, **options) -> EnsemblePolicy:
    return make_policy("ensemble", X, NO_PRIOR, None, base=base, zero_shot=zero_shot, seed=0, **options)


def run(p: EnsemblePolicy, latency: np.ndarray, steps: int) -> list[int]:
    untried = np.ones(len(latency), dtype=bool)
    rng = np.random.default_rng(0)
    picks = []
    for _ in range(steps):
        i = p.choose(untried, rng)
        untried[i] = False
        picks.append(i)
        p.observe(i, math.log(latency[i]))
    return picks


def test_a_model_that_orders_the_results_right_takes_the_weight():
    observed = np.asarray([1.0, 2.0, 3.0, 4.0, 5.0])
    weights = ranking_weights([observed * 2, -observed], observed, np.random.default_rng(0))
    assert weights.tolist() == pytest.approx([1.0, 0.0])
    assert misordered(np.asarray([np.nan, 1.0]), np.asarray([1.0, 2.0]))[0, 1] == 0.5


def test_before_two_results_the_zero_shot_order_is_followed():
    zero = np.linspace(1.0, 0.0, N)  # the last candidate first
    p = policy(np.zeros((N, 0)), zero)
    assert run(p, np.full(N, 10.0), 2) == [N - 1, N - 2]


def test_a_source_device_that_ranks_the_runs_results_like_the_target_is_followed():
    # Two source devices disagree; the target behaves like the second. The zero-shot order (their mean)
    # starts in between; once results arrive the second device's best comes next.
    first = np.abs(np.arange(N) - 5.0)
    second = np.abs(np.arange(N) - 30.0)
    target = 10.0 + second
    p = policy(np.column_stack([first, second]), (first + second) / 2)
    picks = run(p, target, 6)
    assert 30 in picks[:6]
    assert p.weights[1] > p.weights[0]


def test_when_no_source_ranks_the_results_the_runs_own_models_take_over_and_extrapolate():
    source = np.arange(N, dtype=np.float64)  # says: small x is best
    target = 10.0 + (N - np.arange(N)) ** 2  # truth: large x is best
    p = policy(source[:, None], source)
    picks = run(p, target, 5)
    assert N - 1 in picks  # after three results it heads for the far end, past anything measured
    assert p.weights[0] < 0.1  # the source (the only base model: one source is its own zero-shot order)


def test_with_nothing_known_the_first_picks_are_a_random_sample_seeded_by_the_run():
    picks = run(policy(np.zeros((N, 0)), None), np.full(N, 10.0), 5)
    assert picks == run(policy(np.zeros((N, 0)), None), np.full(N, 10.0), 5)
    assert picks != [0, 1, 2, 3, 4] and len(set(picks)) == 5


def test_with_nothing_known_the_runs_own_model_takes_over_once_it_ranks_better_than_chance():
    latency = 1.0 + X[:, 0]  # best at 0, a trend the run's models learn from a few results
    p = policy(np.zeros((N, 0)), None)
    picks = run(p, latency, 14)
    assert p.weights is not None and p.weights[-1] < 0.5  # chance lost most of its weight
    assert 0 in picks


def test_without_scikit_learn_the_ensemble_policy_names_the_extra_and_the_alternative(monkeypatch):
    from amk.core.errors import MissingDependencyError

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError, match=r"amk\[sklearn\].*policy = \"prior\""):
        policy(np.zeros((N, 0)), None)


def test_the_ridge_trend_is_weighed_by_its_leave_one_out_predictions_not_its_errors():
    p = policy(np.zeros((N, 0)), np.full(N, np.nan))
    rows = np.arange(0, N, 4)
    values = 0.5 * X[rows, 0] + 3.0  # a linear trend in the one feature
    loo, prediction = p._trend(rows, values)
    np.testing.assert_allclose(loo, values, rtol=1e-2)  # predictions of each result without it, near the result
    np.testing.assert_allclose(prediction[rows], values, rtol=1e-2)


def test_a_result_every_tree_saw_has_no_out_of_bag_prediction():
    from sklearn.ensemble import ExtraTreesRegressor

    from amk.tuning.ensemble import out_of_bag

    features, values = np.arange(6.0)[:, None], np.arange(6.0) + 10.0
    model = ExtraTreesRegressor(n_estimators=1, bootstrap=True, oob_score=True, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(features, values)
    seen = np.isin(np.arange(6), model.estimators_samples_[0])
    oob = out_of_bag(model)
    assert np.isnan(oob[seen]).all() and np.isfinite(oob[~seen]).all() and (oob[~seen] >= 10.0).all()
