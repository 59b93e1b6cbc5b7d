"""The ``ensemble`` ordering policy: the zero-shot order first, then the models that rank this run's own
measurements best.

Before the run has two passing results it measures in the zero-shot order
(:func:`amk.prior.transfer.zero_shot`: pooled replay of the other devices, weighted by similarity; the
prior's order where no device measured the workload). From then on every candidate is scored by a
weighted sum of *base models*, standardised over the candidates:

- each transfer source (another device's log relative latency of the same config, knobs matched by name),
- the zero-shot order itself and the prior's score (when the prior is trained),
- two *target models* fitted on this run's results (from three passing results on), both over the knobs,
  the sources and the prior: extremely randomised trees (any shape, no extrapolation) and a ridge
  regression with its penalty chosen by generalised cross-validation (a trend: it extrapolates, so a run
  whose best configs lie at the edge of what it measured, or past what the corpus measured, heads there).

The weights are those of RGPE (Feurer, Letham and Bakshy, "Scalable meta-learning for Bayesian
optimization using ranking-weighted Gaussian process ensembles", AutoML workshop 2018): each model's
weight is the probability, over bootstrap resamples of this run's results, that it misorders the fewest
pairs of them (ties share); the target models are judged on predictions of results they were not fitted
on (the trees' out-of-bag predictions, the ridge's leave-one-out ones), so they earn weight only by
predicting. A device whose configs rank like the target's gains
weight as measurements arrive (device similarity learned in the run); when none does, the target model
takes over. Nothing here is tuned: the resample count only sets the weights' resolution.

A cold start (no source, no zero-shot order, an untrained prior: an empty corpus) has no order to start
from: the first picks are a uniform random sample drawn by the run's seeded generator (resumable, the
same for the same seed), and *chance* (a constant prediction, which misorders every pair by half) is one
of the weighted models; with its weight the pick is a uniform random one, so the run's own models lead
only as far as they rank its results better than chance. The evidence decides, not a count of picks.
When the trees do lead, they pick by one tree drawn at random (Thompson sampling over the trees' random
partitions of the space), not by mean minus spread, so a run does not settle in one region of a large
space on its first evidence (``COLD_THOMPSON``: chosen by leave-one-target-out over the dev targets,
bench/search_cold.py). ``COLD_RANDOM_SHARE`` (a least share of random picks, SMAC's interleaving) is 0,
fixed a priori.

Exploration (``exploration = "uncertainty"``): the target model's spread across its trees, times ``kappa``
and the target model's weight, is subtracted from the score, so an unmeasured region counts as promising
only as far as the run's own model is trusted; ``kappa = 0`` exploits. ``"epsilon"``: a uniformly random
untried candidate with probability ``epsilon``. Ties go to the zero-shot order.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from amk.core.errors import MissingDependencyError
from amk.tuning.policy import FAILURE_PENALTY, OrderingPolicy

RESAMPLES = 64  # bootstrap resamples of the run's results for the models' weights
RIDGE_PENALTIES = tuple(10.0 ** np.arange(-3, 4))  # searched by generalised cross-validation in every fit
MIN_PASSING = 2  # passing results before the weights replace the zero-shot order (one pair to rank)
MIN_TARGET_MODEL = 3  # passing results before the trees are fitted
USE_TREND = True  # the ridge trend, fitted once there are more passing results than features
COLD_RANDOM_SHARE = 0.0  # a cold start's least share of uniform random picks (a priori; see above)
# A cold start's trees pick by one tree drawn at random (Thompson sampling), not by mean - kappa x spread,
# which stays in one region of a large space. Chosen by leave-one-target-out on the dev targets
# (bench/search_cold.py: picked in all 14 folds; median evaluations to 5% 28.5 against 51.5).
COLD_THOMPSON = True


def out_of_bag(model) -> np.ndarray:
    """A fitted forest's out-of-bag prediction of each training result, NaN (a tie in the ranking weights)
    for a result every tree saw: scikit-learn reports 0.0 for those, which would read as a confident guess."""
    n = len(model.oob_prediction_)
    unseen_by = np.zeros(n)
    for samples in model.estimators_samples_:
        unseen_by += ~np.isin(np.arange(n), samples)
    return np.where(unseen_by > 0, np.asarray(model.oob_prediction_, dtype=np.float64).ravel(), np.nan)


def misordered(prediction: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(n, n): for each pair with ``observed[i] < observed[j]``, 1 where ``prediction`` orders it the other
    way, 0.5 where it cannot tell (a tie, or NaN on either side), 0 where right; 0 for the other pairs."""
    p_i, p_j = prediction[:, None], prediction[None, :]
    unknown = np.isnan(p_i) | np.isnan(p_j)
    wrong = np.where(unknown | (p_i == p_j), 0.5, (p_i > p_j).astype(np.float64))
    return np.where(observed[:, None] < observed[None, :], wrong, 0.0)


def ranking_weights(predictions: list[np.ndarray], observed: np.ndarray, rng: np.random.Generator,
                    resamples: int = RESAMPLES) -> np.ndarray:
    """RGPE's weights: per model, the share of bootstrap resamples of the results in which it misorders
    the fewest pairs (ties split equally). ``predictions[m][i]`` is model m's prediction for result i."""
    n = len(observed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(np.float64)
    losses = np.stack([np.einsum("bi,ij,bj->b", counts, misordered(p, observed), counts) for p in predictions],
                      axis=1)
    best = losses <= losses.min(axis=1, keepdims=True) + 1e-9
    return (best / best.sum(axis=1, keepdims=True)).mean(axis=0)


def standardised(values: np.ndarray) -> np.ndarray:
    """(values - mean) / standard deviation over the finite entries; NaN stays NaN; 0 spread -> 0."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.full(len(values), np.nan)
    mean, std = values[finite].mean(), values[finite].std()
    return np.where(finite, (values - mean) / (std if std > 0 else 1.0), np.nan)


class EnsemblePolicy(OrderingPolicy):
    name: ClassVar[str] = "ensemble"

    def __init__(self, *args, base: np.ndarray | None = None, zero_shot: np.ndarray | None = None,
                 trees: int = 30, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        try:
            import sklearn.ensemble  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "the 'ensemble' tune policy needs scikit-learn, which is not installed; install it with: "
                "pip install 'amk[sklearn]' (or set policy = \"prior\" in the [tune] section)."
            ) from None
        n = len(self.features)
        self.trees = trees
        prior = np.where(np.isfinite(self.prior_scores), self.prior_scores, np.nan)
        columns = [] if base is None else [np.asarray(base, dtype=np.float64)[:, j] for j in range(base.shape[1])]
        zero = None if zero_shot is None else np.asarray(zero_shot, dtype=np.float64)
        if zero is not None and np.isfinite(zero).any() and len(columns) > 1:  # one source: its own order
            columns.append(zero)
        if np.isfinite(prior).any():
            columns.append(prior)
        self.base = np.column_stack(columns) if columns else np.zeros((n, 0))
        self.base_standardised = np.column_stack([standardised(c) for c in columns]) if columns \
            else np.zeros((n, 0))
        # The order before any pair of results: the zero-shot order, else the prior's, else the space's.
        first = zero if zero is not None and np.isfinite(zero).any() else prior
        # Nothing known (no source, no zero-shot order, an untrained prior): a cold start (see choose).
        self.informed = bool(self.base.shape[1]) or bool(np.isfinite(first).any())
        self.first_order = np.where(np.isfinite(first), first, np.inf) if np.isfinite(first).any() \
            else np.zeros(n)
        spread = self.features.std(axis=0)
        self.features_standardised = (self.features - self.features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
        self.weights: np.ndarray | None = None  # the last weights (base models, then trees and trend)

    def _results(self) -> tuple[np.ndarray, np.ndarray] | None:
        rows = np.asarray([i for i, _ in self.observed], dtype=np.int64)
        values = np.asarray([np.nan if v is None else v for _, v in self.observed], dtype=np.float64)
        passed = ~np.isnan(values)
        if passed.sum() < MIN_PASSING:
            return None
        return rows, np.where(passed, values, np.nanmax(values) + FAILURE_PENALTY)

    def _target_model(self, rows: np.ndarray, values: np.ndarray):
        from sklearn.ensemble import ExtraTreesRegressor

        model = ExtraTreesRegressor(n_estimators=self.trees, bootstrap=True, oob_score=True,
                                    random_state=self.seed + len(self.observed), n_jobs=1)
        with warnings.catch_warnings():  # "some inputs do not have OOB scores": see out_of_bag
            warnings.simplefilter("ignore")
            model.fit(self.features[rows], values)
        return model

    def _trend(self, rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A ridge regression of the results on the standardised features, its penalty chosen by
        generalised cross-validation: (its leave-one-out predictions of the results, its predictions)."""
        from sklearn.linear_model import RidgeCV

        # With a scoring given, cv_results_ holds each result's leave-one-out PREDICTION (scoring=None would
        # store its squared error instead); the penalty is chosen by the same leave-one-out squared error.
        model = RidgeCV(alphas=RIDGE_PENALTIES, store_cv_results=True, scoring="neg_mean_squared_error")
        model.fit(self.features_standardised[rows], values)
        loo = model.cv_results_[:, list(RIDGE_PENALTIES).index(model.alpha_)]
        return np.asarray(loo, dtype=np.float64), model.predict(self.features_standardised)

    def choose(self, untried: np.ndarray, rng: np.random.Generator) -> int:
        candidates = np.flatnonzero(untried)
        data = self._results()
        if data is None:
            if not self.informed:  # a cold start: a uniform random sample (the run's seeded generator)
                return int(rng.choice(candidates))
            return int(candidates[np.lexsort((candidates, self.first_order[candidates]))[0]])
        picked = self._explore(untried, rng)
        if picked is not None:
            return picked
        rows, values = data
        predictions = [self.base[rows, j] for j in range(self.base.shape[1])]
        model = trend = None
        passing = int((~np.isnan(np.asarray([v for _, v in self.observed], dtype=np.float64))).sum())
        if passing >= MIN_TARGET_MODEL:
            model = self._target_model(rows, values)
            predictions.append(out_of_bag(model))
        if USE_TREND and passing > self.features.shape[1]:
            loo, trend = self._trend(rows, values)
            predictions.append(loo)
        if not self.informed:
            # A cold start: chance (a constant prediction, which misorders every pair by half) competes
            # with the run's own models, and with its weight the pick is a uniform random one.
            predictions.append(np.zeros(len(values)))
            weights = ranking_weights(predictions, values, rng)
            self.weights = weights
            if rng.random() < max(weights[-1], COLD_RANDOM_SHARE):
                return int(rng.choice(candidates))
            weights = weights[:-1] / weights[:-1].sum()
        elif not predictions:
            return int(candidates[0])
        else:
            weights = ranking_weights(predictions, values, rng)
            self.weights = weights
        score = np.zeros(len(candidates))
        for j in range(self.base.shape[1]):
            if weights[j] > 0:
                score += weights[j] * np.nan_to_num(self.base_standardised[candidates, j])
        if trend is not None and weights[-1] > 0:
            score += weights[-1] * np.nan_to_num(standardised(trend[candidates]))
        tree_weight = weights[self.base.shape[1]] if model is not None else 0.0
        if model is not None and tree_weight > 0:
            X = self.features[candidates]
            if COLD_THOMPSON and not self.informed:
                tree = model.estimators_[int(rng.integers(len(model.estimators_)))]
                mean, spread = tree.predict(X), np.zeros(len(candidates))
            elif self.exploration == "uncertainty" and self.kappa > 0:
                per_tree = np.stack([tree.predict(X) for tree in model.estimators_])
                mean, spread = per_tree.mean(axis=0), per_tree.std(axis=0)
            else:
                mean, spread = model.predict(X), np.zeros(len(candidates))
            scale = mean.std() if mean.std() > 0 else 1.0
            score += tree_weight * ((mean - mean.mean()) / scale - self.kappa * spread / scale)
        order = np.lexsort((candidates, self.first_order[candidates], np.round(score, 12)))
        return int(candidates[order[0]])
