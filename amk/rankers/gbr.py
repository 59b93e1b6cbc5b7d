"""The ``gbr`` ranker: scikit-learn's gradient-boosted regression trees on the log relative latency.

The fitted trees are exported to plain arrays (feature, threshold, children, leaf value per node), and
predictions are made from those arrays with numpy, so a saved model loads without scikit-learn and
without unpickling anything, and predicts exactly as it did before saving.
"""

from __future__ import annotations

import os
from typing import ClassVar

import attrs
import numpy as np

from amk.core.implementation import check_is_fitted
from amk.core.ranker import Ranker
from amk.rankers.persist import read_model, write_model


@attrs.frozen
class TreeEnsemble:
    """Regression trees as padded arrays: ``(n_trees, max_nodes)`` each; a leaf has ``left == -1``."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int
    init: float
    learning_rate: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n, n_trees = len(X), self.feature.shape[0]
        out = np.full(n, self.init)
        trees = np.arange(n_trees)[None, :]
        rows = np.arange(n)[:, None]
        chunk = max(1, 2_000_000 // max(n_trees, 1))
        for start in range(0, n, chunk):
            Xc = X[start:start + chunk]
            node = np.zeros((len(Xc), n_trees), dtype=np.int64)
            r = rows[: len(Xc)]
            for _ in range(self.depth):
                feat = self.feature[trees, node]
                go_left = Xc[r, np.maximum(feat, 0)] <= self.threshold[trees, node]
                child = np.where(go_left, self.left[trees, node], self.right[trees, node])
                node = np.where(child >= 0, child, node)
            out[start:start + chunk] += self.learning_rate * self.value[trees, node].sum(axis=1)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("feature", "threshold", "left", "right", "value")}


def export_gradient_boosting(model) -> TreeEnsemble:
    """The trees of a fitted ``GradientBoostingRegressor`` (squared error) as a :class:`TreeEnsemble`."""
    trees = [est[0].tree_ for est in model.estimators_]
    width = max(t.node_count for t in trees)

    def padded(attr: str, fill, dtype) -> np.ndarray:
        out = np.full((len(trees), width), fill, dtype=dtype)
        for i, t in enumerate(trees):
            values = getattr(t, attr)
            out[i, : t.node_count] = values.reshape(t.node_count) if attr == "value" else values
        return out

    return TreeEnsemble(
        feature=padded("feature", -2, np.int64), threshold=padded("threshold", 0.0, np.float64),
        left=padded("children_left", -1, np.int64), right=padded("children_right", -1, np.int64),
        value=padded("value", 0.0, np.float64), depth=int(max(t.max_depth for t in trees)),
        init=float(np.asarray(model.init_.constant_).ravel()[0]), learning_rate=float(model.learning_rate),
    )


class GradientBoostingRanker(Ranker):
    name: ClassVar[str] = "gbr"
    requires: ClassVar[dict[str, str]] = {"sklearn": "sklearn"}

    @attrs.frozen
    class Options:
        n_estimators: int = attrs.field(default=150, validator=attrs.validators.ge(1))
        max_depth: int = attrs.field(default=4, validator=attrs.validators.ge(1))
        learning_rate: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
        subsample: float = attrs.field(default=0.8, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
        max_rows: int = attrs.field(default=50_000, validator=attrs.validators.ge(1))  # fit on a random sample of this many rows at most
        seed: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> GradientBoostingRanker:
        from sklearn.ensemble import GradientBoostingRegressor

        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        if len(y) > self.options.max_rows:
            keep = np.random.default_rng(self.options.seed).choice(len(y), self.options.max_rows, replace=False)
            X, y = X[keep], y[keep]
        o = self.options
        model = GradientBoostingRegressor(n_estimators=o.n_estimators, max_depth=o.max_depth,
                                          learning_rate=o.learning_rate, subsample=o.subsample,
                                          random_state=o.seed)
        model.fit(X, y)
        self.trees_ = export_gradient_boosting(model)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "trees_")
        return self.trees_.predict(X)

    def save(self, path: str | os.PathLike) -> None:
        check_is_fitted(self, "trees_")
        t = self.trees_
        write_model(path, self.name, self.options,
                    {"depth": t.depth, "init": t.init, "learning_rate": t.learning_rate}, t.arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> GradientBoostingRanker:
        options, state, arrays = read_model(path, cls.name)
        ranker = cls(cls.Options(**options))
        ranker.trees_ = TreeEnsemble(**arrays, depth=int(state["depth"]), init=float(state["init"]),
                                     learning_rate=float(state["learning_rate"]))
        return ranker
