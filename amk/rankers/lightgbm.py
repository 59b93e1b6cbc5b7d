"""The ``lightgbm`` ranker: LightGBM on the log relative latency (regression) or ranked per group (lambdarank).

``objective = "regression"`` (the default) fits the log of latency over the best known for the same
workload and device; ``"lambdarank"`` learns the order within each workload + device group from graded
relevance (one grade per 5% from the group's best). The default is the one that scored better in
``amk evaluate`` on the Kernel Tuner caches (bench/RESULTS.md, section "Prior"). Models are saved as
LightGBM's own text format, which loading checks and rebuilds before LightGBM parses it (never executes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np

from amk.core.errors import ConfigError, ModelFileError
from amk.core.implementation import check_is_fitted
from amk.core.ranker import Ranker
from amk.rankers.lightgbm_text import canonical_model_text
from amk.rankers.persist import read_model, read_model_file, write_model

OBJECTIVES = ("regression", "lambdarank")
RELEVANCE_LEVELS = 20  # lambdarank grades: 20 for a group's best, one less per 5% slower, 0 from 2.65x on
MODEL_TEXT = "model.txt"


def relevance(log_relative: np.ndarray) -> np.ndarray:
    """Integer grades for lambdarank from the log relative latency (0 = the group's best)."""
    steps = np.floor(np.asarray(log_relative) / np.log(1.05))
    return np.clip(RELEVANCE_LEVELS - steps, 0, RELEVANCE_LEVELS).astype(np.int32)


class LightGBMRanker(Ranker):
    name: ClassVar[str] = "lightgbm"
    requires: ClassVar[dict[str, str]] = {"lightgbm": "lightgbm"}

    @attrs.frozen
    class Options:
        objective: str = attrs.field(default="regression")
        n_estimators: int = attrs.field(default=100, validator=attrs.validators.ge(1))
        num_leaves: int = attrs.field(default=127, validator=attrs.validators.ge(2))
        learning_rate: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
        min_data_in_leaf: int = attrs.field(default=20, validator=attrs.validators.ge(0))
        feature_fraction: float = attrs.field(default=0.9, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
        max_bin: int = attrs.field(default=255, validator=attrs.validators.ge(2))
        num_threads: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # 0: one per 50,000 rows, up to the number of idle cores (at least 1)
        max_rows: int = attrs.field(default=200_000, validator=attrs.validators.ge(1))  # fit on a random sample of this many rows at most
        max_query: int = attrs.field(default=1000, validator=attrs.validators.ge(1))  # lambdarank: larger groups are split at random into queries of this size
        seed: int = attrs.field(default=0, validator=attrs.validators.ge(0))

        @objective.validator
        def _check_objective(self, attribute, value) -> None:
            if value not in OBJECTIVES:
                raise ConfigError(f"lightgbm objective {value!r} is not one of {list(OBJECTIVES)}.")

    def _threads(self, n_rows: int) -> int:
        # OpenMP threads spin while they wait: on small data, or on cores other processes are using, more
        # threads are much slower (measured: 3x slower with 2 threads on a busy 2-core machine).
        if self.options.num_threads:
            return self.options.num_threads
        cores = os.cpu_count() or 1
        idle = cores - round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else cores
        return max(1, min(idle, n_rows // 50_000))

    def _params(self, n_rows: int) -> dict:
        o = self.options
        threads = self._threads(n_rows)
        params = {
            "objective": "lambdarank" if o.objective == "lambdarank" else "regression",
            "num_leaves": o.num_leaves, "learning_rate": o.learning_rate,
            "min_data_in_leaf": o.min_data_in_leaf, "feature_fraction": o.feature_fraction,
            "max_bin": o.max_bin, "seed": o.seed, "verbose": -1, "deterministic": True,
            "force_col_wise": True, "num_threads": threads,
        }
        if o.objective == "lambdarank":
            params["label_gain"] = [float(2 ** (i / 2) - 1) for i in range(RELEVANCE_LEVELS + 1)]
            params["lambdarank_truncation_level"] = 30
        return params

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> LightGBMRanker:
        import lightgbm

        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        if len(y) > self.options.max_rows:
            keep = np.sort(np.random.default_rng(self.options.seed).choice(len(y), self.options.max_rows, replace=False))
            X, y = X[keep], y[keep]
            groups = None if groups is None else np.asarray(groups)[keep]
        if self.options.objective == "lambdarank":
            if groups is None:
                raise ValueError("the lambdarank objective needs groups (one per workload + device)")
            # LightGBM caps a query at 10,000 rows: split each group at random into queries of max_query rows.
            rng = np.random.default_rng(self.options.seed)
            shuffled = rng.permutation(len(y))
            position = np.empty(len(y), dtype=np.int64)
            order_in_group = np.argsort(np.asarray(groups)[shuffled], kind="stable")
            sorted_groups = np.asarray(groups)[shuffled][order_in_group]
            starts = np.r_[0, np.nonzero(np.diff(sorted_groups))[0] + 1]
            rank_in_group = np.arange(len(y)) - np.repeat(starts, np.diff(np.r_[starts, len(y)]))
            position[shuffled[order_in_group]] = rank_in_group
            query = np.asarray(groups, dtype=np.int64) * (len(y) + 1) + position // max(1, self.options.max_query)
            order = np.argsort(query, kind="stable")
            X, y = X[order], y[order]
            _, sizes = np.unique(query[order], return_counts=True)
            data = lightgbm.Dataset(X, label=relevance(y), group=sizes, free_raw_data=True)
        else:
            data = lightgbm.Dataset(X, label=y, free_raw_data=True)
        self.booster_ = lightgbm.train(self._params(len(y)), data, num_boost_round=self.options.n_estimators)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "booster_")
        X = np.asarray(X, dtype=np.float32)
        scores = self.booster_.predict(X, num_threads=self._threads(len(X)))
        # lambdarank scores grow with relevance; amk's scores are lower = better.
        return -scores if self.options.objective == "lambdarank" else scores

    def save(self, path: str | os.PathLike) -> None:
        check_is_fitted(self, "booster_")
        write_model(path, self.name, self.options, {"model_file": MODEL_TEXT},
                    files={MODEL_TEXT: self.booster_.model_to_string().encode()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> LightGBMRanker:
        """The ranker saved under ``path``. The model text is checked against its saved checksum, then read and
        rebuilt from its checked numbers (``amk.rankers.lightgbm_text``) before LightGBM sees it: a damaged
        model is a ModelFileError, never an abort of the process."""
        import lightgbm

        options, _state, _arrays = read_model(path, cls.name)
        where = str(Path(path) / MODEL_TEXT)
        try:
            text = read_model_file(path, cls.name, MODEL_TEXT).decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(f"{where}: not a LightGBM text model (not UTF-8); save the model again.") from None
        text = canonical_model_text(text, where)  # LightGBM sees only what was checked (it aborts on damage)
        ranker = cls(cls.Options(**options))
        try:
            ranker.booster_ = lightgbm.Booster(model_str=text)
        except (lightgbm.basic.LightGBMError, ValueError) as exc:
            raise ModelFileError(f"{where}: LightGBM cannot read it ({exc}); save the model again.") from None
        return ranker
