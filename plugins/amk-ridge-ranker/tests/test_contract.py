"""RidgeRanker meets amk's ranker contract (amk.testing): one test per check, as any plugin can run them."""

from amk_ridge_ranker import RidgeRanker

from amk.testing import parametrize_with_checks, ranker_checks


@parametrize_with_checks(ranker_checks(RidgeRanker))
def test_ridge_meets_the_ranker_contract(check):
    check()


@parametrize_with_checks(ranker_checks(lambda: RidgeRanker(RidgeRanker.Options(alpha=25.0)), label="alpha=25"))
def test_a_strongly_regularised_ridge_meets_the_ranker_contract(check):
    check()
