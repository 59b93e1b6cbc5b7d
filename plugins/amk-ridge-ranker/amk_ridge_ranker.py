"""An example amk plugin: a ridge-regression ranker (closed form, numpy only).

Install it (``pip install plugins/amk-ridge-ranker``) and select it in ``amk.toml``::

    [ranker]
    name = "ridge"
    alpha = 0.5
"""

from __future__ import annotations

import attrs
import numpy as np

import amk
from amk.core.implementation import check_is_fitted
from amk.core.ranker import Ranker


class RidgeRanker(Ranker):
    """Predicts a config's relative cost as a ridge regression of its standardised features."""

    name = "ridge"

    @attrs.frozen
    class Options:
        alpha: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> RidgeRanker:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (X - self.mean_) / self.scale_
        self.intercept_ = float(y.mean())
        gram = Z.T @ Z + self.options.alpha * np.eye(Z.shape[1])
        self.coef_ = np.linalg.solve(gram, Z.T @ (y - self.intercept_))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        Z = (np.asarray(X, dtype=float) - self.mean_) / self.scale_
        return Z @ self.coef_ + self.intercept_


@amk.hookimpl
def register_rankers(register) -> None:
    register(RidgeRanker)
