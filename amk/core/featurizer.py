"""The featurizer kind: (workload, device, config) -> a fixed-length numeric vector, vectorised.

A featurizer is fitted on the corpus's distinct workloads, devices and configs (it learns knob names and
categories), then turns points into the rows a ranker learns from. Optional capability, declared here:
``get_state`` / ``set_state`` (saving a trained prior without pickle); the defaults refuse.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amk.core.devices import Device
from amk.core.errors import UnsupportedOperationError
from amk.core.implementation import Implementation
from amk.core.workload import Workload

if TYPE_CHECKING:
    import numpy as np


class Featurizer(Implementation, ABC):
    """(workload, device, config) -> a fixed-length numeric vector; vectorised over many points."""

    @abstractmethod
    def fit(self, workloads: Sequence[Workload], devices: Sequence[Device],
            configs: Sequence[Mapping[str, Any]]) -> Featurizer:
        """Learn encodings (knob names, categories) from the training points; returns self."""

    @abstractmethod
    def transform(self, workloads: Sequence[Workload], devices: Sequence[Device],
                  configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """A (n_points, n_features) float array; raises NotFittedError before ``fit``."""

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """The name of each column ``transform`` returns."""

    def transform_indexed(self, workloads: Sequence[Workload], devices: Sequence[Device],
                          configs: Sequence[Mapping[str, Any]], workload_index: np.ndarray,
                          device_index: np.ndarray, config_index: np.ndarray) -> np.ndarray:
        """``transform`` of the points (workloads[wi], devices[di], configs[ci]) given as index columns.

        The unique tables are what :class:`~amk.core.columns.CorpusColumns` holds; a featurizer that
        encodes workloads, devices and configs separately overrides this to encode each unique item once.
        """
        return self.transform([workloads[i] for i in workload_index], [devices[i] for i in device_index],
                              [configs[i] for i in config_index])

    def get_state(self) -> dict[str, Any]:
        """What ``fit`` learned, as JSON-ready data (for saving a trained prior without pickle)."""
        raise UnsupportedOperationError(f"the featurizer {self.name!r} cannot be saved")

    def set_state(self, state: Mapping[str, Any]) -> Featurizer:
        """Restore what ``get_state`` returned; returns self."""
        raise UnsupportedOperationError(f"the featurizer {self.name!r} cannot be loaded")
