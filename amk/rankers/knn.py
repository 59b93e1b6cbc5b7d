"""The ``knn`` ranker (numpy only): a distance-weighted mean of the nearest corpus points' targets.

Features are standardised. The reference weighted neighbours by 1/(d + 1e-6), so an exact match drowned
every other neighbour (one noisy duplicate decided the score); here the weight is 1/(e + h), with e a
neighbour's distance beyond the nearest one and h a fraction (``bandwidth``) of the mean of e: the nearest
match weighs the most but never alone, and the weights do not depend on the scale of the features.
Query cost grows with training rows x candidates: for large corpora prefer ``lightgbm``.
"""

from __future__ import annotations

import os
from typing import ClassVar

import attrs
import numpy as np

from amk.core.implementation import check_is_fitted
from amk.core.ranker import Ranker
from amk.rankers.persist import read_model, write_model


class KNNRanker(Ranker):
    name: ClassVar[str] = "knn"

    @attrs.frozen
    class Options:
        k: int = attrs.field(default=4, validator=attrs.validators.ge(1))  # neighbours per query
        bandwidth: float = attrs.field(default=0.25, validator=attrs.validators.gt(0))  # h = bandwidth x the neighbours' mean distance beyond the nearest one
        max_rows: int = attrs.field(default=100_000, validator=attrs.validators.ge(1))  # fit on a random sample of this many rows at most (query cost grows with it)
        chunk: int = attrs.field(default=1024, validator=attrs.validators.ge(1))  # queries per distance block (memory: chunk x rows floats)
        seed: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> KNNRanker:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(X) != len(y) or len(y) == 0:
            raise ValueError(f"fit needs as many targets as rows (and at least one), got {len(X)} and {len(y)}")
        if len(y) > self.options.max_rows:
            keep = np.random.default_rng(self.options.seed).choice(len(y), self.options.max_rows, replace=False)
            X, y = X[keep], y[keep]
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        sd[sd == 0] = 1.0
        self.scale_ = sd
        self.X_ = ((X - self.mean_) / self.scale_).astype(np.float32)
        self.sq_norms_ = (self.X_.astype(np.float64) ** 2).sum(axis=1)
        self.y_ = y
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "X_")

    def _neighbours(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indexes) of each query's k nearest training rows, nearest first."""
        self._check_fitted()
        Q = ((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_).astype(np.float32)
        # predict and predict_uncertainty of the same candidates (what a tune loop asks) search once.
        cached = getattr(self, "_last_query", None)
        if cached is not None and cached[1] is self.X_ and cached[0].shape == Q.shape and np.array_equal(cached[0], Q):
            return cached[2]
        result = self._search(Q)
        self._last_query = (Q, self.X_, result)
        return result

    def _search(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(self.options.k, len(self.y_)))
        dist = np.empty((len(Q), k))
        idx = np.empty((len(Q), k), dtype=np.int64)
        for start in range(0, len(Q), self.options.chunk):
            q = Q[start:start + self.options.chunk]
            d2 = (q.astype(np.float64) ** 2).sum(axis=1)[:, None] + self.sq_norms_[None, :] - 2.0 * (q @ self.X_.T)
            part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else np.tile(
                np.arange(d2.shape[1]), (len(q), 1))
            pd = np.take_along_axis(d2, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            idx[start:start + len(q)] = np.take_along_axis(part, order, axis=1)
            dist[start:start + len(q)] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0.0))
        return dist, idx

    def _weights(self, dist: np.ndarray) -> np.ndarray:
        # Distances count from the nearest neighbour's: a query far from all training rows (a new device)
        # still weighs its closest match (the same config elsewhere) above the rest.
        excess = dist - dist[:, :1]
        h = self.options.bandwidth * excess.mean(axis=1, keepdims=True)
        h = np.where(h > 0, h, 1.0)  # all neighbours equally near: equal weights
        w = 1.0 / (excess + h)
        return w / w.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        dist, idx = self._neighbours(X)
        return (self._weights(dist) * self.y_[idx]).sum(axis=1)

    def predict_uncertainty(self, X: np.ndarray) -> np.ndarray:
        """The weighted spread of the neighbours' targets plus how far the neighbours are (in sd units)."""
        dist, idx = self._neighbours(X)
        w = self._weights(dist)
        ys = self.y_[idx]
        mean = (w * ys).sum(axis=1, keepdims=True)
        spread = np.sqrt((w * (ys - mean) ** 2).sum(axis=1))
        return spread + 0.1 * dist.mean(axis=1) * (self.y_.std() if len(self.y_) > 1 else 0.0)

    def save(self, path: str | os.PathLike) -> None:
        self._check_fitted()
        write_model(path, self.name, self.options, {},
                    {"X": self.X_, "y": self.y_, "mean": self.mean_, "scale": self.scale_})

    @classmethod
    def load(cls, path: str | os.PathLike) -> KNNRanker:
        options, _state, arrays = read_model(path, cls.name)
        ranker = cls(cls.Options(**options))
        ranker.X_ = arrays["X"].astype(np.float32)
        ranker.y_ = arrays["y"]
        ranker.mean_ = arrays["mean"]
        ranker.scale_ = arrays["scale"]
        ranker.sq_norms_ = (ranker.X_.astype(np.float64) ** 2).sum(axis=1)
        return ranker
