"""The autotuning methodology's performance score (amk.integrations.kernel_tuner.methodology).

0 is random search, 1 the optimum; the range of evaluations follows the published cutoffs. The exact
agreement with the autotuning-methodology package itself is checked by
bench/kernel_tuner_methodology_crosscheck.py (the package is not a dependency of amk).
"""

from __future__ import annotations

import math

import pytest

from amk.integrations.kernel_tuner.methodology import performance_score, random_search_curve, score_range

SPACE = [float(v) for v in range(1, 101)]  # 100 configs, 1..100 ms: the optimum is 1


def test_the_range_runs_from_the_1_percent_to_the_95_percent_cutoff_of_random_search_clipped_to_the_budget():
    # median 50.5; 1%: a config <= 50.005 is the 50th draw from the worst -> ceil(50 / 51) = 1 evaluation;
    # 95%: <= 3.475 is the 97th -> ceil(97 / 4) = 25 evaluations.
    assert score_range(SPACE, budget=1000) == (1, 25)
    assert score_range(SPACE, budget=10) == (1, 10)


def test_random_search_scores_zero_and_the_optimum_first_scores_one():
    expected_random = list(random_search_curve(SPACE, range(1, 26)))
    assert performance_score([expected_random], SPACE, budget=25).score == pytest.approx(0.0)
    assert performance_score([[1.0]], SPACE, budget=25).score == pytest.approx(1.0)


def test_a_strategy_stuck_at_the_median_scores_below_random():
    assert performance_score([[50.0] * 25], SPACE, budget=25).score < 0


def test_the_curve_is_the_median_over_seeds():
    best, middle, worst = [1.0], [40.0, 20.0, 10.0, 5.0], [100.0] * 25
    assert performance_score([best, middle, worst], SPACE, budget=25).score == pytest.approx(
        performance_score([middle], SPACE, budget=25).score)


def test_failures_count_as_no_progress_and_a_run_that_stopped_early_keeps_its_best():
    assert performance_score([[None, None, 1.0]], SPACE, budget=25).score == pytest.approx(
        performance_score([[100.0, 100.0, 1.0]], SPACE, budget=25).score)
    assert performance_score([[3.0]], SPACE, budget=25).score == pytest.approx(
        performance_score([[3.0] * 25], SPACE, budget=25).score)


def test_a_space_where_random_search_is_already_at_the_optimum_has_no_score():
    assert math.isnan(performance_score([[2.0]], [1.0, 2.0], budget=5).score)
    with pytest.raises(ValueError, match="at least two valid configs"):
        performance_score([[1.0]], [1.0], budget=5)
