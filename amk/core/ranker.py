"""The ranker kind: a learned model of a config's relative cost (lower = better).

Fit on features ``X`` (rows of a featurizer), targets ``y`` (log latency relative to the best known for
the same workload and device) and query ``groups`` (one per workload and device). Optional capabilities,
declared here with their defaults: ``predict_uncertainty`` (None: cannot tell), ``set_feature_names``
(ignored), ``save`` / ``load`` (refused).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from amk.core.errors import UnsupportedOperationError
from amk.core.implementation import Implementation

if TYPE_CHECKING:
    import numpy as np


class Ranker(Implementation, ABC):
    """A learned model of a config's relative cost: fit on features, predict scores (lower = better)."""

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> Ranker:
        """Fit on features ``X``, targets ``y`` (lower = better) and optional query ``groups``; returns self."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores for ``X`` (lower = better); raises NotFittedError before ``fit``."""

    def set_feature_names(self, names: Sequence[str]) -> None:
        """Receive the name of each feature column before ``fit`` (a ranker that treats some columns apart,
        e.g. the device's, reads them here); ignored by default."""

    def predict_uncertainty(self, X: np.ndarray) -> np.ndarray | None:
        """A per-row uncertainty for exploration, or None when this ranker cannot tell."""
        return None

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to the directory ``path`` as data only (JSON, npz, text; never pickle)."""
        raise UnsupportedOperationError(f"the ranker {self.name!r} cannot be saved")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ranker:
        """Read a model ``save`` wrote; loading never executes code from the files."""
        raise UnsupportedOperationError(f"the ranker {cls.name!r} cannot be loaded")
