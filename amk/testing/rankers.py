"""The ranker contract: scikit-learn-like fit/predict on a trivially learnable target (lower = better),
NotFittedError before fit, deterministic, row by row, and a data-only save/load round trip when it saves."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from amk.core.errors import UnsupportedOperationError
from amk.core.ranker import Ranker
from amk.testing._base import Check, CheckReport, bind, expect, expect_not_fitted, run_checks
from amk.testing.samples import learnable_data

RankerFactory = Callable[[], Ranker]
MIN_RANK_CORRELATION = 0.8
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill")


@attrs.frozen
class RankerSubject:
    """What the ranker checks run on: ``make_ranker()`` returns a new, unfitted ranker (a class will do)."""

    make_ranker: RankerFactory | None

    def fresh(self) -> Ranker:
        """A new, unfitted ranker."""
        if self.make_ranker is None:
            raise TypeError("no make_ranker: pass one to ranker_checks(...) or to the check, check(make_ranker=...)")
        ranker = self.make_ranker()
        expect(isinstance(ranker, Ranker), f"make_ranker must return a Ranker, got {type(ranker).__name__}")
        return ranker

    def fitted(self, seed: int = 0) -> tuple[Ranker, np.ndarray]:
        """A new ranker fitted on :func:`learnable_data` (with groups), and its training X."""
        X, y, groups = learnable_data(seed=seed)
        return self.fresh().fit(X, y, groups), X


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two vectors (ties broken by position; 0 when either is constant: a
    constant prediction ranks nothing). amk.prior.evaluation.spearman averages ties, but amk.testing
    stands below amk.prior."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    ranks_a = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    ranks_b = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def init_only_stores_options(subject: RankerSubject) -> None:
    """A new ranker has no learned state yet: no public attribute ending in '_' before fit."""
    ranker = subject.fresh()
    learned = sorted(k for k in vars(ranker) if k.endswith("_") and not k.startswith("_"))
    expect(not learned, f"__init__ should only store options; learned attributes (ending in '_') belong to fit, "
                        f"found {learned}")


def fit_returns_self(subject: RankerSubject) -> None:
    """fit(X, y, groups) returns the ranker itself."""
    ranker = subject.fresh()
    X, y, groups = learnable_data()
    returned = ranker.fit(X, y, groups)
    expect(returned is ranker, f"fit should return self, got {type(returned).__name__}")


def fit_accepts_no_groups(subject: RankerSubject) -> None:
    """fit(X, y) without groups works and the ranker then predicts."""
    X, y, _ = learnable_data()
    scores = np.asarray(subject.fresh().fit(X, y).predict(X[:5]))
    expect(scores.shape == (5,), f"predict of 5 rows after fit without groups should have shape (5,), got {scores.shape}")


def predict_before_fit_raises_not_fitted_error(subject: RankerSubject) -> None:
    """predict on a ranker that was never fitted raises amk's NotFittedError."""
    X, _, _ = learnable_data(n=3)
    expect_not_fitted(lambda: subject.fresh().predict(X), "predict before fit", "scores")


def predict_returns_one_finite_score_per_row(subject: RankerSubject) -> None:
    """predict returns a float array of shape (n,) with finite scores, for 1 row and for many."""
    ranker, _ = subject.fitted()
    for n in (1, 7, 100):
        X, _, _ = learnable_data(n=n, seed=2)
        scores = np.asarray(ranker.predict(X))
        expect(scores.shape == (n,), f"predict of {n} rows should have shape ({n},), got {scores.shape}")
        expect(np.issubdtype(scores.dtype, np.floating), f"predict should return floats, got dtype {scores.dtype}")
        expect(np.isfinite(scores).all(), f"predict should return finite scores, got {scores[~np.isfinite(scores)][:3]}")


def lower_scores_for_lower_targets(subject: RankerSubject) -> None:
    """On a trivially learnable target, unseen rows are ordered by their target (lower score = lower target)."""
    ranker, _ = subject.fitted()
    X, y, _ = learnable_data(n=100, seed=1)
    rho = rank_correlation(np.asarray(ranker.predict(X)), y)
    expect(rho > MIN_RANK_CORRELATION, f"scores of unseen rows should rank like the target (lower = better): "
                                       f"rank correlation {rho:.2f}, expected above {MIN_RANK_CORRELATION}")


def fit_is_deterministic(subject: RankerSubject) -> None:
    """Two new rankers fitted on the same data predict the same scores."""
    (first, X), (second, _) = subject.fitted(), subject.fitted()
    a, b = np.asarray(first.predict(X)), np.asarray(second.predict(X))
    expect(np.allclose(a, b, rtol=1e-7, atol=1e-9),
           f"two fits on the same data should predict the same; largest difference {np.max(np.abs(a - b)):.3g} "
           "(seed every random choice from the options)")


def predict_scores_each_row_on_its_own(subject: RankerSubject) -> None:
    """A row's score does not depend on the other rows predicted with it, nor on earlier predictions."""
    ranker, _ = subject.fitted()
    X, _, _ = learnable_data(n=60, seed=3)
    whole = np.asarray(ranker.predict(X))
    part = np.asarray(ranker.predict(X[10:20]))
    expect(np.allclose(part, whole[10:20], rtol=1e-5, atol=1e-8),
           "predict of rows 10..19 alone should equal those rows of predict of all 60 rows")
    again = np.asarray(ranker.predict(X))
    expect(np.allclose(again, whole, rtol=1e-7, atol=1e-9), "predicting the same rows twice should give the same scores")


def refitting_replaces_what_was_learned(subject: RankerSubject) -> None:
    """fit on new data forgets the old: a ranker fitted twice predicts like one fitted on the second data only."""
    X_old, y_old, groups_old = learnable_data(seed=4)
    X_new, y_new, groups_new = learnable_data(seed=5)
    y_old = -y_old  # the opposite order, so anything kept from the first fit shows
    refitted = subject.fresh().fit(X_old, y_old, groups_old).fit(X_new, y_new, groups_new)
    fresh = subject.fresh().fit(X_new, y_new, groups_new)
    a, b = np.asarray(refitted.predict(X_new)), np.asarray(fresh.predict(X_new))
    expect(np.allclose(a, b, rtol=1e-7, atol=1e-9), "a ranker fitted twice should predict like a new one fitted "
                                                    f"on the second data; largest difference {np.max(np.abs(a - b)):.3g}")


def predict_uncertainty_is_none_or_one_non_negative_value_per_row(subject: RankerSubject) -> None:
    """predict_uncertainty returns None (cannot tell) or a finite, non-negative value per row."""
    ranker, _ = subject.fitted()
    X, _, _ = learnable_data(n=9, seed=6)
    spread = ranker.predict_uncertainty(X)
    if spread is None:
        return
    spread = np.asarray(spread)
    expect(spread.shape == (9,), f"predict_uncertainty of 9 rows should have shape (9,), got {spread.shape}")
    expect(np.isfinite(spread).all() and (spread >= 0).all(),
           f"predict_uncertainty should be finite and non-negative, got {spread[:5]}")


def _saved(ranker: Ranker, directory: Path) -> bool:
    """Save ``ranker`` into ``directory``; False when it cannot save (UnsupportedOperationError)."""
    try:
        ranker.save(directory)
    except UnsupportedOperationError:
        return False
    return True


def saved_model_loads_and_predicts_the_same(subject: RankerSubject) -> None:
    """A ranker that saves loads back (through its class's load) and predicts the same scores; one that cannot
    save raises UnsupportedOperationError."""
    ranker, X = subject.fitted()
    with tempfile.TemporaryDirectory(prefix="amk-testing-") as tmp:
        path = Path(tmp) / "model"
        if not _saved(ranker, path):
            return
        loaded = type(ranker).load(path)
        expect(isinstance(loaded, type(ranker)), f"load should return a {type(ranker).__name__}, got {type(loaded).__name__}")
        a, b = np.asarray(ranker.predict(X)), np.asarray(loaded.predict(X))
        expect(a.shape == b.shape and np.allclose(a, b), "a loaded model should predict what the saved one did; "
                                                         f"largest difference {np.max(np.abs(a - b)) if a.shape == b.shape else 'n/a'}")


def _pickled(path: Path) -> str | None:
    """Why ``path`` holds pickled data, or None when it does not."""
    if path.suffix in PICKLE_SUFFIXES:
        return f"{path.name} is a pickle file"
    head = path.read_bytes()[:2]
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"{path.name} starts with a pickle header"
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                for name in arrays.files:
                    arrays[name]  # an object array raises ValueError: it needs pickle to load
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)
    except ValueError as exc:
        return f"{path.name} needs pickle to load: {exc}"
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            return f"{path.name} is not valid JSON: {exc}"
    return None


def saved_model_is_data_only(subject: RankerSubject) -> None:
    """A saved model is data (JSON, npz without object arrays, text): nothing is pickled."""
    ranker, _ = subject.fitted()
    with tempfile.TemporaryDirectory(prefix="amk-testing-") as tmp:
        path = Path(tmp) / "model"
        if not _saved(ranker, path):
            return
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        expect(files, f"save should write the model into the directory it is given, found nothing in {path}")
        reasons = [r for r in (_pickled(f) for f in files) if r]
        expect(not reasons, f"a saved model must be data only, never pickle: {'; '.join(reasons)}")


RANKER_CHECKS: tuple[Callable[[RankerSubject], None], ...] = (
    init_only_stores_options,
    fit_returns_self,
    fit_accepts_no_groups,
    predict_before_fit_raises_not_fitted_error,
    predict_returns_one_finite_score_per_row,
    lower_scores_for_lower_targets,
    fit_is_deterministic,
    predict_scores_each_row_on_its_own,
    refitting_replaces_what_was_learned,
    predict_uncertainty_is_none_or_one_non_negative_value_per_row,
    saved_model_loads_and_predicts_the_same,
    saved_model_is_data_only,
)


def ranker_checks(make_ranker: RankerFactory | None = None, *, label: str = "") -> list[Check]:
    """Every ranker check, bound to ``make_ranker`` (a class or any callable returning a new ranker)."""
    return bind("ranker", RANKER_CHECKS, RankerSubject(make_ranker), label)


def check_ranker(make_ranker: RankerFactory) -> CheckReport:
    """Run every ranker check on new rankers from ``make_ranker``; AssertionError names each failed check."""
    return run_checks(ranker_checks(make_ranker))
