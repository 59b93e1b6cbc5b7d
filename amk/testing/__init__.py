"""amk.testing: the contract every store, ranker, featurizer and backend meets, as checks you run on yours.

Like scikit-learn's ``check_estimator``: each kind has a list of named checks, one behaviour each, that use
only amk's public API. Run them all at once, which raises one AssertionError naming every failed check and
what it expected::

    from amk.testing import check_backend, check_featurizer, check_ranker, check_store

    check_ranker(MyRanker)                                   # a class, or any callable -> a new ranker
    check_featurizer(MyFeaturizer)
    check_store(lambda directory: MyStore(MyStore.Options(path=str(directory / "corpus"))))
    check_backend(MyBackend, workload, device)               # a workload on a device the backend serves

or as one pytest test per check (pytest is imported only by this helper)::

    @parametrize_with_checks(ranker_checks(MyRanker))
    def test_my_ranker(check):
        check()

Factories give a new instance per check; ``make_store`` receives a fresh temporary directory (removed
after the check). A store check that needs something the caller did not give (``reopen``, ``spoil_entry``)
is skipped, saying why. amk runs its own built-ins through these checks (tests/test_*_contract.py).
"""

from amk.testing._base import Check, CheckReport, NotApplicable, parametrize_with_checks, run_checks
from amk.testing.backends import BACKEND_CHECKS, BackendSubject, backend_checks, check_backend
from amk.testing.featurizers import FEATURIZER_CHECKS, FeaturizerSubject, check_featurizer, featurizer_checks
from amk.testing.rankers import RANKER_CHECKS, RankerSubject, check_ranker, ranker_checks
from amk.testing.samples import FeaturizerPoints, learnable_data, sample_points, sample_record, sample_records
from amk.testing.stores import STORE_CHECKS, StoreSubject, check_store, reopen_with_same_options, store_checks

__all__ = [
    "BACKEND_CHECKS", "FEATURIZER_CHECKS", "RANKER_CHECKS", "STORE_CHECKS",
    "BackendSubject", "Check", "CheckReport", "FeaturizerPoints", "FeaturizerSubject", "NotApplicable",
    "RankerSubject", "StoreSubject",
    "backend_checks", "check_backend", "check_featurizer", "check_ranker", "check_store", "featurizer_checks",
    "learnable_data", "parametrize_with_checks", "ranker_checks", "reopen_with_same_options", "run_checks",
    "sample_points", "sample_record", "sample_records", "store_checks",
]
