"""Ordering policies: which untried candidate the tune loop measures next.

A policy sees each candidate as a row of features (its knobs, what the corpus says of the same config
on other devices, the prior's score), is told every result as it arrives, and picks the next index.

- ``prior``: the prior's order (lower score first; the search space's order when the prior is
  untrained), with exploration by the prior's uncertainty or epsilon-random picks. Never retrained.
- ``ensemble`` (needs scikit-learn; :mod:`amk.tuning.ensemble`): the zero-shot order of the transfer
  sources, then a ranking-weighted ensemble of the sources, the prior and a model of this run's results.
- ``surrogate`` (needs scikit-learn): an extremely randomised trees model of log latency, fitted on the
  measurements of this run with the prior's score and the transfer features as inputs, refitted after
  every result. It picks the lowest ``mean - kappa * spread across trees`` (``uncertainty``) or the
  lowest mean with epsilon-random picks (``epsilon``). Until it has ``min_observations`` passing
  results it follows the prior's order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from amk.core.errors import ConfigError, MissingDependencyError

FAILURE_PENALTY = 0.5  # a failed config is modelled as this much worse (in log latency) than the worst pass


class OrderingPolicy(ABC):
    name: ClassVar[str]

    def __init__(self, features: np.ndarray, prior_scores: np.ndarray, prior_uncertainty: np.ndarray | None,
                 *, exploration: str = "uncertainty", epsilon: float = 0.1, kappa: float = 1.0,
                 seed: int = 0) -> None:
        if exploration not in ("uncertainty", "epsilon"):
            raise ConfigError(f"[tune] exploration={exploration!r} must be 'uncertainty' or 'epsilon'.")
        self.features = np.asarray(features, dtype=np.float64)
        self.prior_scores = np.asarray(prior_scores, dtype=np.float64)
        self.prior_uncertainty = prior_uncertainty
        self.exploration = exploration
        self.epsilon = epsilon
        self.kappa = kappa
        self.seed = seed
        self.observed: list[tuple[int, float | None]] = []

    def observe(self, index: int, log_latency: float | None) -> None:
        """Record a result: the log of the latency, or None for a failed config."""
        self.observed.append((index, log_latency))

    @abstractmethod
    def choose(self, untried: np.ndarray, rng: np.random.Generator) -> int:
        """The index of the next candidate among those ``untried`` (a boolean mask with a True)."""

    def _explore(self, untried: np.ndarray, rng: np.random.Generator) -> int | None:
        if self.exploration == "epsilon" and rng.random() < self.epsilon:
            return int(rng.choice(np.flatnonzero(untried)))
        return None

    def prior_choice(self, untried: np.ndarray, rng: np.random.Generator) -> int:
        picked = self._explore(untried, rng)
        if picked is not None:
            return picked
        score = self.prior_scores.copy()
        if self.exploration == "uncertainty" and self.prior_uncertainty is not None:
            score = score - self.kappa * np.nan_to_num(self.prior_uncertainty)
        score = np.where(untried, score, np.inf)
        # +inf everywhere (an untrained prior): the first untried, i.e. the search space's order.
        return int(np.argmin(np.where(np.isnan(score), np.inf, score))) if np.isfinite(score).any() \
            else int(np.flatnonzero(untried)[0])


class PriorOrder(OrderingPolicy):
    name: ClassVar[str] = "prior"

    def choose(self, untried: np.ndarray, rng: np.random.Generator) -> int:
        return self.prior_choice(untried, rng)


class SurrogatePolicy(OrderingPolicy):
    name: ClassVar[str] = "surrogate"
    min_observations: ClassVar[int] = 3

    def __init__(self, *args, trees: int = 30, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        try:
            import sklearn.ensemble  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "the 'surrogate' tune policy needs scikit-learn, which is not installed; install it with: "
                "pip install 'amk[sklearn]' (or set policy = \"prior\" in the [tune] section)."
            ) from None
        self.trees = trees

    def _targets(self) -> tuple[np.ndarray, np.ndarray] | None:
        rows = np.asarray([i for i, _ in self.observed], dtype=np.int64)
        values = np.asarray([np.nan if v is None else v for _, v in self.observed], dtype=np.float64)
        passed = ~np.isnan(values)
        if passed.sum() < self.min_observations:
            return None
        values = np.where(passed, values, np.nanmax(values) + FAILURE_PENALTY)
        return rows, values

    def choose(self, untried: np.ndarray, rng: np.random.Generator) -> int:
        data = self._targets()
        if data is None:
            return self.prior_choice(untried, rng)
        picked = self._explore(untried, rng)
        if picked is not None:
            return picked
        from sklearn.ensemble import ExtraTreesRegressor

        rows, values = data
        model = ExtraTreesRegressor(n_estimators=self.trees, random_state=self.seed + len(self.observed), n_jobs=1)
        model.fit(self.features[rows], values)
        candidates = np.flatnonzero(untried)
        X = self.features[candidates]
        per_tree = np.stack([tree.predict(X) for tree in model.estimators_])
        score = per_tree.mean(axis=0)
        if self.exploration == "uncertainty":
            score = score - self.kappa * per_tree.std(axis=0)
        return int(candidates[np.argmin(score)])


POLICIES: dict[str, type[OrderingPolicy]] = {p.name: p for p in (PriorOrder, SurrogatePolicy)}
POLICY_NAMES = ("ensemble", *POLICIES)  # ensemble: amk.tuning.ensemble (imported when used)


def make_policy(name: str, *args, trees: int = 30, base: np.ndarray | None = None,
                zero_shot: np.ndarray | None = None, **kwargs) -> OrderingPolicy:
    """The policy ``name`` over candidates with ``features`` (rows), ``prior_scores`` and
    ``prior_uncertainty`` (the positional ``args``); ``base`` (transfer sources, one column each) and
    ``zero_shot`` (the order before any result) are read by the ``ensemble`` policy only."""
    if name == "ensemble":
        from amk.tuning.ensemble import EnsemblePolicy

        return EnsemblePolicy(*args, base=base, zero_shot=zero_shot, trees=trees, **kwargs)
    if name not in POLICIES:
        raise ConfigError(f"[tune] policy={name!r} is unknown; policies are {sorted(POLICY_NAMES)}.")
    if name == "surrogate":
        return SurrogatePolicy(*args, trees=trees, **kwargs)
    return POLICIES[name](*args, **kwargs)
