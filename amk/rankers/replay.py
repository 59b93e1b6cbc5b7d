"""The ``replay`` ranker: what other devices measured of the same config, optimistic where they disagree,
and a learned ranker for configs no device measured.

A candidate whose workload and config were measured on training devices scores the weighted mean of
its log relative latency over those devices minus ``optimism`` times their weighted standard deviation
(each device counted once, weighted by its similarity to the candidate's device: exp(-distance), with
:func:`amk.prior.features.spec_distance`, architecture first). A device of the target's own architecture
(or the target itself) thus speaks for it; where no training device does, and they disagree, a config
that was near-best somewhere comes earlier than one that was mediocre everywhere: a hedge for a new
device whose best configs differ from the training devices' (a portfolio of configs good on some
device is worth more than the consensus of several). A config the candidate's own device measured
scores that measurement alone. A candidate no training device measured (a new workload, a new config) gets
the ``fallback`` ranker's prediction, in the same unit (log relative latency).

Which columns name the device comes from the featurizer's feature names (``device.*``), handed over by
:func:`amk.core.prior.fit_prior` through :meth:`ReplayRanker.set_feature_names`; without them every
column is part of a config's identity (replay within a device only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np

from amk.core.errors import ConfigError
from amk.core.implementation import check_is_fitted
from amk.core.ranker import Ranker
from amk.prior.features import DEVICE_FEATURES, spec_distance
from amk.rankers.persist import read_model, write_model

DEVICE_PREFIX = "device."
FALLBACK_DIR = "fallback"


def _keys(block: np.ndarray) -> np.ndarray:
    """One hashable bytes key per row of a float block (rows equal as float32 give equal keys)."""
    block = np.ascontiguousarray(np.asarray(block, dtype=np.float32) + np.float32(0.0))  # -0.0 -> 0.0
    return block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel() if block.shape[1] \
        else np.zeros(len(block), dtype="V1")


class ReplayRanker(Ranker):
    name: ClassVar[str] = "replay"

    @attrs.frozen
    class Options:
        optimism: float = attrs.field(default=1.0)  # standard deviations subtracted from the mean over devices
        fallback: str = "lightgbm"  # the ranker for candidates no training device measured

        @optimism.validator
        def _check_optimism(self, attribute, value) -> None:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 3:
                raise ConfigError(f"replay optimism {value!r} must be a number from 0 to 3 (1 is the default).")

    def set_feature_names(self, names: Sequence[str]) -> None:
        """Tell the ranker which columns describe the device (the rest identify workload and config)."""
        self.device_columns_ = np.asarray([n.startswith(DEVICE_PREFIX) for n in names], dtype=bool)

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        device = getattr(self, "device_columns_", np.zeros(X.shape[1], dtype=bool))
        if len(device) != X.shape[1]:
            raise ValueError(f"the replay ranker was told {len(device)} feature names but got {X.shape[1]} columns")
        return _keys(X[:, ~device]), _keys(X[:, device])

    def _fallback(self) -> Ranker:
        from amk.core.plugins import get_registry

        if self.options.fallback == self.name:
            raise ConfigError("the replay ranker's fallback must be another ranker, e.g. 'lightgbm'.")
        return get_registry().create(Ranker, self.options.fallback)

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> ReplayRanker:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(X) != len(y) or len(y) == 0:
            raise ValueError(f"fit needs as many targets as rows (and at least one), got {len(X)} and {len(y)}")
        fallback = self._fallback()
        fallback.fit(X, y, groups)
        config_keys, device_keys = self._split(X)
        _, config_id = np.unique(config_keys, return_inverse=True)
        _, device_id = np.unique(device_keys, return_inverse=True)
        # One value per (config, device): the mean of its repeats.
        n_device = int(device_id.max()) + 1
        pair = config_id.astype(np.int64) * n_device + device_id
        pairs, pair_id = np.unique(pair, return_inverse=True)
        n_config = int(config_id.max()) + 1
        values = np.full((n_config, n_device), np.nan)
        values[pairs // n_device, pairs % n_device] = np.bincount(pair_id, weights=y) / np.bincount(pair_id)
        first = np.zeros(n_config, dtype=np.int64)
        first[config_id[::-1]] = np.arange(len(config_id))[::-1]
        first_of_device = np.zeros(n_device, dtype=np.int64)
        first_of_device[device_id[::-1]] = np.arange(len(device_id))[::-1]
        self.keys_ = config_keys[first]
        self.values_ = values
        self.device_specs_ = X[first_of_device][:, self._device_mask(X.shape[1])]
        self.fallback_ = fallback
        self._index()
        return self

    def _device_mask(self, n_columns: int) -> np.ndarray:
        return getattr(self, "device_columns_", np.zeros(n_columns, dtype=bool))

    def device_weights(self, device_row: np.ndarray) -> np.ndarray:
        """The weight of each training device for a candidate on the device with spec columns ``device_row``."""
        if self.device_specs_.shape[1] == len(DEVICE_FEATURES):
            distance = spec_distance(device_row, self.device_specs_)
        elif self.device_specs_.shape[1]:
            distance = np.sqrt(((self.device_specs_ - device_row[None, :]) ** 2).mean(axis=1))
        else:
            distance = np.zeros(len(self.device_specs_))
        return np.exp(-np.where(np.isfinite(distance), distance, 50.0))

    def replay_scores(self, found: np.ndarray, device_row: np.ndarray) -> np.ndarray:
        """Weighted mean minus ``optimism`` weighted standard deviations of the configs ``found`` (rows of values_)."""
        values = self.values_[found]
        device_weights = self.device_weights(device_row)
        weights = np.where(np.isnan(values), 0.0, device_weights[None, :])
        # What the candidate's own device measured is not hedged against what others did.
        own = device_weights >= 1.0
        if own.any():
            measured_here = (weights[:, own] > 0).any(axis=1)
            weights[measured_here[:, None] & ~own[None, :]] = 0.0
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-300)
        filled = np.nan_to_num(values)
        mean = (weights * filled).sum(axis=1)
        spread = np.sqrt((weights * (filled - mean[:, None]) ** 2).sum(axis=1))
        return mean - self.options.optimism * spread

    def _index(self) -> None:
        self.lookup_ = {bytes(k): i for i, k in enumerate(self.keys_)}

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "values_")
        X = np.asarray(X, dtype=np.float64)
        config_keys, device_keys = self._split(X)
        found = np.asarray([self.lookup_.get(bytes(k), -1) for k in config_keys], dtype=np.int64)
        out = np.empty(len(X))
        known = found >= 0
        if known.any():
            device_block = X[:, self._device_mask(X.shape[1])]
            device_ids, device_of = np.unique(device_keys, return_inverse=True) if len(device_keys) else ([], [])
            for d in range(len(device_ids)):
                rows = np.nonzero(known & (device_of == d))[0]
                if len(rows):
                    out[rows] = self.replay_scores(found[rows], device_block[rows[0]])
        if (~known).any():
            out[~known] = np.asarray(self.fallback_.predict(X[~known]), dtype=np.float64)
        return out

    def save(self, path: str | os.PathLike) -> None:
        check_is_fitted(self, "values_")
        keys = np.frombuffer(self.keys_.tobytes(), dtype=np.float32).reshape(len(self.keys_), -1)
        write_model(path, self.name, self.options, {},
                    {"keys": keys, "values": self.values_, "device_specs": self.device_specs_,
                     "device_columns": getattr(self, "device_columns_", np.zeros(0, dtype=bool))})
        self.fallback_.save(Path(path) / FALLBACK_DIR)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReplayRanker:
        from amk.core.plugins import get_registry

        options, _state, arrays = read_model(path, cls.name)
        ranker = cls(cls.Options(**options))
        if len(arrays["device_columns"]):
            ranker.device_columns_ = arrays["device_columns"].astype(bool)
        ranker.keys_ = _keys(arrays["keys"])
        ranker.values_ = arrays["values"]
        ranker.device_specs_ = arrays["device_specs"]
        ranker.fallback_ = get_registry().get(Ranker, ranker.options.fallback).cls.load(Path(path) / FALLBACK_DIR)
        ranker._index()
        return ranker
