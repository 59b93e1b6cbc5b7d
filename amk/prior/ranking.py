"""The learned ranking prior: a featurizer and a ranker trained on the corpus, and ranking candidates by it.

:func:`make_ranker` trains a :class:`Prior` on the corpus and :func:`rank` orders candidates best-first by
it, leaving them as they are while the corpus is too small to learn from. The prior is advisory: it
reorders; every config is still validated, checked and measured, and the keep/revert gate decides. What
trains is chosen explicitly (measured PASS by default); the target is comparable across workloads and
devices (latency relative to the best known for the same workload and device, see
:mod:`amk.prior.training`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.config import structure_options
from amk.core.devices import Device
from amk.core.errors import AmkError, ModelFileError, ValidationError
from amk.core.featurizer import Featurizer
from amk.core.inputs import parse_json
from amk.core.plugins import get_registry
from amk.core.ranker import Ranker
from amk.core.records import MeasurementKind
from amk.core.workload import Workload
from amk.decode.schedule import ScheduleConfig
from amk.io.files import write_atomically
from amk.prior.distance import as_device
from amk.prior.training import DEFAULT_KINDS, Corpus, TrainingSet, load_points

log = logging.getLogger("amk.prior")

MIN_ROWS_TO_RANK = 6  # below this many usable rows the ranker is untrained and rank() changes nothing


def _config_dict(config: Mapping[str, Any] | ScheduleConfig) -> dict[str, Any]:
    # A plain dict is read as it is (the featurizers never change it): copying 10,000 of them costs ~10 ms.
    if type(config) is dict:
        return config
    return config.to_dict() if isinstance(config, ScheduleConfig) else dict(config)


class Prior:
    """A featurizer and a ranker trained on the corpus; ``score`` predicts log relative latency (lower = better).

    ``trained`` is False when the corpus had fewer than MIN_ROWS_TO_RANK usable rows: then every score
    is +inf and :func:`rank` leaves candidates in their order.
    """

    def __init__(self, featurizer: Featurizer, ranker: Ranker, *, trained: bool, n_rows: int,
                 left_out: int = 0) -> None:
        self.featurizer = featurizer
        self.ranker = ranker
        self.trained = trained
        self.n_rows = n_rows
        self.left_out = left_out  # rows that matched the filters but had no usable latency

    def __repr__(self) -> str:
        state = f"trained on {self.n_rows} rows" if self.trained else f"untrained ({self.n_rows} rows)"
        if self.left_out:
            state += f", {self.left_out} without a usable latency left out"
        return f"Prior({self.featurizer.name}, {self.ranker.name}, {state})"

    def features(self, workload: Workload, device: Device | str,
                 configs: Sequence[Mapping[str, Any] | ScheduleConfig]) -> np.ndarray:
        n = len(configs)
        zeros = np.zeros(n, dtype=np.int64)
        return self.featurizer.transform_indexed([workload], [as_device(device)],
                                                 [_config_dict(c) for c in configs], zeros, zeros, np.arange(n))

    def score(self, workload: Workload, device: Device | str,
              configs: Sequence[Mapping[str, Any] | ScheduleConfig]) -> np.ndarray:
        """The predicted log relative latency of each config (lower = better); +inf for all when untrained."""
        if not self.trained or len(configs) == 0:
            return np.full(len(configs), np.inf)
        scores = np.asarray(self.ranker.predict(self.features(workload, device, configs)), dtype=np.float64)
        return np.where(np.isnan(scores), np.inf, scores)

    def uncertainty(self, workload: Workload, device: Device | str,
                    configs: Sequence[Mapping[str, Any] | ScheduleConfig]) -> np.ndarray | None:
        """The ranker's per-config uncertainty (for exploration), or None when it cannot tell or is untrained."""
        if not self.trained or len(configs) == 0:
            return None
        out = self.ranker.predict_uncertainty(self.features(workload, device, configs))
        return None if out is None else np.asarray(out, dtype=np.float64)

    def save(self, path: str | os.PathLike) -> None:
        """Write the trained prior to the directory ``path`` (JSON and arrays only; see :meth:`load`)."""
        if not self.trained:
            raise AmkError("an untrained prior has nothing to save; train it on a corpus with enough rows first.")
        folder = Path(path)
        self.ranker.save(folder / "ranker")
        doc = {"featurizer": self.featurizer.name, "featurizer_options": attrs.asdict(self.featurizer.options),
               "featurizer_state": self.featurizer.get_state(), "ranker": self.ranker.name, "n_rows": self.n_rows}
        write_atomically(folder / "prior.json", json.dumps(doc, indent=1, allow_nan=False), "the prior")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Prior:
        """Read a prior :meth:`save` wrote; nothing in the files is executed."""
        folder = Path(path)
        try:
            doc = parse_json((folder / "prior.json").read_bytes(), max_bytes=None)
        except (OSError, ValidationError) as exc:
            raise AmkError(f"{folder}: no readable prior.json ({exc}); is it a directory a prior was saved to?") \
                from None
        keys = {"featurizer": str, "featurizer_options": dict, "featurizer_state": dict, "ranker": str, "n_rows": int}
        if not isinstance(doc, dict) or any(not isinstance(doc.get(k), t) for k, t in keys.items()):
            raise ModelFileError(f"{folder / 'prior.json'}: is not a prior amk saved (it needs {sorted(keys)}); "
                                 "save the prior again.")
        registry = get_registry()
        feat_impl = registry.get(Featurizer, doc["featurizer"])
        options = structure_options(feat_impl.cls.Options, doc["featurizer_options"], where=str(folder),
                                    label=f"featurizer {doc['featurizer']!r}")
        featurizer = registry.create(Featurizer, doc["featurizer"], options).set_state(doc["featurizer_state"])
        ranker_cls = registry.get(Ranker, doc["ranker"]).cls
        ranker = ranker_cls.load(folder / "ranker")
        return cls(featurizer, ranker, trained=True, n_rows=int(doc["n_rows"]))


def _create(kind: type, spec: Any) -> Any:
    return get_registry().create(kind, spec) if isinstance(spec, str) else spec


def fit_prior(training: TrainingSet, featurizer: str | Featurizer = "amk", ranker: str | Ranker = "knn") -> Prior:
    """Fit ``featurizer`` and ``ranker`` on ``training`` (untrained below MIN_ROWS_TO_RANK rows)."""
    feat = _create(Featurizer, featurizer)
    model = _create(Ranker, ranker)
    n = len(training)
    if n < MIN_ROWS_TO_RANK:
        return Prior(feat, model, trained=False, n_rows=n)
    cols = training.columns
    # The featurizer learns its vocabulary from each distinct config (with a workload it ran with) and each
    # distinct workload (with a config) once, not from every row.
    configs, first_of_config = np.unique(cols.config_index, return_index=True)
    workloads, first_of_workload = np.unique(cols.workload_index, return_index=True)
    pair_w = np.concatenate([cols.workload_index[first_of_config], workloads])
    pair_c = np.concatenate([configs, cols.config_index[first_of_workload]])
    feat.fit([cols.workloads[i] for i in pair_w], cols.devices, [cols.configs[i] for i in pair_c])
    X = feat.transform_indexed(cols.workloads, cols.devices, cols.configs, cols.workload_index,
                               cols.device_index, cols.config_index)
    model.set_feature_names(feat.feature_names)
    model.fit(X, np.log(training.target), training.groups)
    return Prior(feat, model, trained=True, n_rows=n)


def make_ranker(corpus: Corpus | None, *, device: str | None = None, featurizer: str | Featurizer = "amk",
                ranker: str | Ranker = "knn", kinds: Sequence[MeasurementKind] = DEFAULT_KINDS,
                workload_kind: str | None = None) -> Prior:
    """Train a :class:`Prior` on the corpus (only ``device``'s rows when given; all devices by default, so
    knowledge transfers through device specs). Call again to retrain as the corpus grows."""
    training = load_points(corpus, device=device, workload_kind=workload_kind, kinds=kinds)
    prior = fit_prior(training, featurizer, ranker)
    prior.left_out = training.skipped  # said by repr(prior), which amk rank and the tune report show
    return prior


def rank(candidates: Sequence[Mapping[str, Any] | ScheduleConfig], workload: Workload, device: Device | str,
         corpus: Corpus | None = None, *, prior: Prior | None = None) -> list:
    """``candidates`` best-first by the prior: the same objects, reordered; ties keep their input order.

    Unchanged while the prior is untrained (too little data to learn from: pure exploration).
    """
    candidates = list(candidates)
    if not candidates:
        return []
    prior = prior if prior is not None else make_ranker(corpus)
    if not prior.trained:
        return candidates
    scores = prior.score(workload, device, candidates)
    order = np.argsort(scores, kind="stable")
    return [candidates[i] for i in order]
