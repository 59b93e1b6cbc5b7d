"""The featurizer contract: fit learns, transform gives one finite float row per point with a named column
each, transform_indexed equals transform, points unseen in fit are encoded, and the state round-trips
through JSON when the featurizer can save it."""

from __future__ import annotations

import json
from collections.abc import Callable

import attrs
import numpy as np

from amk.core.errors import NotFittedError, UnsupportedOperationError
from amk.core.featurizer import Featurizer
from amk.testing._base import Check, CheckReport, bind, expect, run_checks
from amk.testing.samples import FeaturizerPoints, sample_points

FeaturizerFactory = Callable[[], Featurizer]


@attrs.frozen
class FeaturizerSubject:
    """What the featurizer checks run on: ``make_featurizer()`` returns a new, unfitted featurizer (a class
    will do); ``points`` are the workloads, devices and configs it is fitted on and transforms."""

    make_featurizer: FeaturizerFactory | None
    points: FeaturizerPoints = attrs.field(factory=sample_points)

    def fresh(self) -> Featurizer:
        """A new, unfitted featurizer."""
        if self.make_featurizer is None:
            raise TypeError("no make_featurizer: pass one to featurizer_checks(...) or to the check, "
                            "check(make_featurizer=...)")
        featurizer = self.make_featurizer()
        expect(isinstance(featurizer, Featurizer),
               f"make_featurizer must return a Featurizer, got {type(featurizer).__name__}")
        return featurizer

    def fitted(self) -> Featurizer:
        """A new featurizer fitted on every point."""
        return self.fresh().fit(*self.points.expanded())

    def transform(self, featurizer: Featurizer, rows: np.ndarray | None = None) -> np.ndarray:
        """``featurizer.transform`` of the points (of ``rows``), as an array."""
        return np.asarray(featurizer.transform(*self.points.expanded(rows)))


def init_only_stores_options(subject: FeaturizerSubject) -> None:
    """A new featurizer has no learned state yet: no public attribute ending in '_' before fit."""
    learned = sorted(k for k in vars(subject.fresh()) if k.endswith("_") and not k.startswith("_"))
    expect(not learned, f"__init__ should only store options; learned attributes (ending in '_') belong to fit, "
                        f"found {learned}")


def fit_returns_self(subject: FeaturizerSubject) -> None:
    """fit(workloads, devices, configs) returns the featurizer itself."""
    featurizer = subject.fresh()
    returned = featurizer.fit(*subject.points.expanded())
    expect(returned is featurizer, f"fit should return self, got {type(returned).__name__}")


def transform_before_fit_raises_not_fitted_error(subject: FeaturizerSubject) -> None:
    """transform on a featurizer that was never fitted raises amk's NotFittedError."""
    try:
        subject.transform(subject.fresh())
    except NotFittedError:
        return
    except Exception as exc:
        raise AssertionError(f"transform before fit should raise amk.core.errors.NotFittedError (see "
                             f"amk.core.implementation.check_is_fitted), got {type(exc).__name__}: {exc}") from exc
    raise AssertionError("transform before fit should raise amk.core.errors.NotFittedError; it returned features")


def transform_gives_one_finite_float_row_per_point(subject: FeaturizerSubject) -> None:
    """transform returns a float array of shape (n_points, n_features) with finite values."""
    X = subject.transform(subject.fitted())
    n = len(subject.points)
    expect(X.ndim == 2 and X.shape[0] == n, f"transform of {n} points should have {n} rows, got shape {X.shape}")
    expect(X.shape[1] > 0, "transform should give at least one feature column")
    expect(np.issubdtype(X.dtype, np.floating), f"transform should return floats, got dtype {X.dtype}")
    expect(np.isfinite(X).all(), f"transform should return finite values; {int((~np.isfinite(X)).sum())} are not")


def feature_names_name_every_column_once(subject: FeaturizerSubject) -> None:
    """feature_names has one distinct string per column transform returns."""
    featurizer = subject.fitted()
    X = subject.transform(featurizer)
    names = list(featurizer.feature_names)
    expect(len(names) == X.shape[1], f"feature_names should name each of the {X.shape[1]} columns, got {len(names)} names")
    expect(all(isinstance(n, str) and n for n in names), "every feature name should be a non-empty string")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    expect(not duplicates, f"feature names should be distinct, got duplicates {duplicates}")


def transform_indexed_equals_transform_of_the_expanded_points(subject: FeaturizerSubject) -> None:
    """transform_indexed of the unique tables and index columns equals transform of the points they expand to."""
    featurizer = subject.fitted()
    p = subject.points
    indexed = np.asarray(featurizer.transform_indexed(p.workloads, p.devices, p.configs, p.workload_index,
                                                      p.device_index, p.config_index))
    expanded = subject.transform(featurizer)
    expect(indexed.shape == expanded.shape and np.array_equal(indexed, expanded),
           "transform_indexed should equal transform of the expanded points"
           + ("" if indexed.shape == expanded.shape else f": shapes {indexed.shape} and {expanded.shape}"))


def transform_encodes_each_point_on_its_own(subject: FeaturizerSubject) -> None:
    """A point's row does not depend on the other points transformed with it."""
    featurizer = subject.fitted()
    whole = subject.transform(featurizer)
    rows = np.arange(len(subject.points))[::3]
    part = subject.transform(featurizer, rows)
    expect(part.shape == whole[rows].shape and np.array_equal(part, whole[rows]),
           "transform of every third point alone should equal those rows of transform of all points")


def fit_is_deterministic(subject: FeaturizerSubject) -> None:
    """Two new featurizers fitted on the same points give the same features and names."""
    first, second = subject.fitted(), subject.fitted()
    expect(list(first.feature_names) == list(second.feature_names), "two fits should give the same feature names")
    expect(np.array_equal(subject.transform(first), subject.transform(second)),
           "two fits on the same points should transform them the same")


def points_unseen_in_fit_are_encoded(subject: FeaturizerSubject) -> None:
    """Points of workloads, devices and configs fit never saw are encoded, finite and as wide, not refused."""
    p = subject.points
    seen = np.nonzero((p.workload_index == 0) & (p.device_index == 0))[0]
    featurizer = subject.fresh().fit(*p.expanded(seen))
    width = len(featurizer.feature_names)
    X = subject.transform(featurizer)
    expect(X.shape == (len(p), width), f"transform of points unseen in fit should have shape {(len(p), width)}, "
                                       f"got {X.shape}")
    expect(np.isfinite(X).all(), "points unseen in fit should be encoded as finite values")


def state_round_trips_through_json(subject: FeaturizerSubject) -> None:
    """get_state is JSON-ready and set_state on a new featurizer restores the same features (or both raise
    UnsupportedOperationError for a featurizer that cannot be saved)."""
    featurizer = subject.fitted()
    try:
        state = featurizer.get_state()
    except UnsupportedOperationError:
        return
    restored_state = json.loads(json.dumps(state))
    restored = subject.fresh()
    returned = restored.set_state(restored_state)
    expect(returned is restored, f"set_state should return self, got {type(returned).__name__}")
    expect(list(restored.feature_names) == list(featurizer.feature_names),
           "a restored featurizer should have the same feature names")
    expect(np.array_equal(subject.transform(restored), subject.transform(featurizer)),
           "a featurizer restored from get_state should transform the points the same")


FEATURIZER_CHECKS: tuple[Callable[[FeaturizerSubject], None], ...] = (
    init_only_stores_options,
    fit_returns_self,
    transform_before_fit_raises_not_fitted_error,
    transform_gives_one_finite_float_row_per_point,
    feature_names_name_every_column_once,
    transform_indexed_equals_transform_of_the_expanded_points,
    transform_encodes_each_point_on_its_own,
    fit_is_deterministic,
    points_unseen_in_fit_are_encoded,
    state_round_trips_through_json,
)


def featurizer_checks(make_featurizer: FeaturizerFactory | None = None, *, points: FeaturizerPoints | None = None,
                      label: str = "") -> list[Check]:
    """Every featurizer check, bound to ``make_featurizer`` and ``points`` (:func:`sample_points` when None)."""
    subject = FeaturizerSubject(make_featurizer, points if points is not None else sample_points())
    return bind("featurizer", FEATURIZER_CHECKS, subject, label)


def check_featurizer(make_featurizer: FeaturizerFactory, *, points: FeaturizerPoints | None = None) -> CheckReport:
    """Run every featurizer check on new featurizers; AssertionError names each failed check."""
    return run_checks(featurizer_checks(make_featurizer, points=points))
