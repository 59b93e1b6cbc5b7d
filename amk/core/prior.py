"""The prior: warm starts and a learned ranking of candidate configs, both read from the corpus.

* :func:`warm_start` gives the best-known configs for the same or the nearest workload on the same device
  (or, with no data for that device, on the most similar devices by their specs); an empty list is an
  honest cold start, never an invented seed.
* :func:`make_ranker` trains a :class:`Prior` on the corpus and :func:`rank` orders candidates best-first
  by it, leaving them as they are while the corpus is too small to learn from.

The prior is advisory: it reorders and seeds; every config is still validated, checked and measured,
and the keep/revert gate decides. Shapes come from the records (never from names); what trains is
chosen explicitly (measured PASS by default); the target is comparable across workloads and devices
(latency relative to the best known for the same workload and device, see :mod:`amk.core.training`).
Every function takes the corpus as a store, its :class:`~amk.core.columns.CorpusColumns` (read once,
reuse it across calls) or records.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.columns import CorpusColumns
from amk.core.devices import Device, resolve_device
from amk.core.errors import AmkError, InvalidConfigError, ValidationError
from amk.core.features import device_spec_rows, flatten, spec_distance
from amk.core.interfaces import Backend, Featurizer, Ranker
from amk.core.records import MeasurementKind, Verdict
from amk.core.schedule import SEARCHABLE_KNOB_CHOICES, SEARCHABLE_KNOB_DEFAULTS, ScheduleConfig
from amk.core.shapes import ModelShape
from amk.core.training import (
    DEFAULT_KINDS,
    Corpus,
    TrainingSet,
    corpus_columns,
    group_rows,
    load_points,
    relative_to_best,
)
from amk.core.workload import DECODE_KIND, Workload

log = logging.getLogger("amk.prior")

MIN_ROWS_TO_RANK = 6  # below this many usable rows the ranker is untrained and rank() changes nothing
MIN_ROWS_TO_WARM = 1  # below this many usable rows for a device warm_start returns [] (a cold start)

__all__ = [
    "DEFAULT_KINDS",
    "MIN_ROWS_TO_RANK",
    "MIN_ROWS_TO_WARM",
    "SEARCHABLE_KNOB_CHOICES",
    "SEARCHABLE_KNOB_DEFAULTS",
    "Corpus",
    "Prior",
    "Seed",
    "TrainingSet",
    "corpus_columns",
    "device_distance",
    "load_points",
    "make_ranker",
    "rank",
    "warm_start",
    "warm_start_combined",
    "workload_distance",
]


@attrs.frozen
class Seed:
    """One warm-start suggestion and where it came from."""

    config: dict[str, Any]
    latency_us: float  # as measured on ``device`` for ``workload``
    distance: float  # between the target workload's shape and ``workload``'s (0 = the same shape)
    workload: Workload  # the workload the config was measured on
    device: str  # the device it was measured on (another one when transferred by specs)
    source: str  # the record's source (file and line, cache key) or, without one, its workload and device
    relative: float = 1.0  # its latency over the best known for that workload and device


# --------------------------------------------------------------------------------------------------
# distances: which past workloads and devices transfer to a target
# --------------------------------------------------------------------------------------------------

def _numeric_shape(workload: Workload) -> dict[str, float]:
    flat = flatten(workload.shape)
    numeric = {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    others = {k: v for k, v in flat.items() if k not in numeric}
    return {**numeric, **{f"{k}={v}": 1.0 for k, v in others.items()}}


def workload_distance(target: Workload, other: Workload) -> float:
    """How far ``other``'s tuning knowledge is from ``target``: 0 = same shape, inf = does not transfer.

    Decode workloads compare by ModelShape distance whatever their names (shapes come from records);
    other kinds transfer only within the same kernel (its knobs are the kernel's own), by the Euclidean
    distance of the log2 of their shape's numbers.
    """
    if target.kind != other.kind:
        return math.inf
    if target.kind == DECODE_KIND:
        try:
            d = target.model_shape().distance(other.model_shape())
        except ValidationError:
            return math.inf
        return d + (0.0 if target.shape.get("dtype") == other.shape.get("dtype") else 1.0)
    if target.name != other.name:
        return math.inf
    a, b = _numeric_shape(target), _numeric_shape(other)
    if set(a) != set(b):
        return math.inf
    return math.sqrt(sum((math.log2(1.0 + abs(a[k])) - math.log2(1.0 + abs(b[k]))) ** 2 for k in a))


def device_distance(target: Device, others: Sequence[Device]) -> np.ndarray:
    """Distance of each of ``others`` to ``target``: architecture first, then specs; inf where no spec is
    known on both sides (see :func:`amk.core.features.spec_distance`: any device of the target's
    architecture is nearer than any device of another one, and memory size barely counts)."""
    return spec_distance(device_spec_rows([target])[0], device_spec_rows(list(others)))


def _as_device(device: Device | str) -> Device:
    return device if isinstance(device, Device) else resolve_device(device)


# --------------------------------------------------------------------------------------------------
# warm starts
# --------------------------------------------------------------------------------------------------

def _ordered_rows(workload: Workload, device: Device, columns: CorpusColumns, shape_radius: float,
                  kinds: Sequence[MeasurementKind]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows to seed from, best first, one per distinct config: (rows, workload distances, relative latency).

    Same device first; with no row for it, the most similar devices by specs. Within that, the rows of
    workloads within ``shape_radius`` (or, when none is, of every workload that transfers), ordered by
    distance (rounded, so near-equal shapes count as equal) then by relative latency.
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(columns) == 0:
        return empty, np.zeros(0), np.zeros(0)
    wdist = np.asarray([workload_distance(workload, w) for w in columns.workloads])
    usable = columns.mask(kinds=tuple(kinds), verdicts=(Verdict.PASS,))
    usable &= np.isfinite(columns.latency_us) & (columns.latency_us > 0)
    usable &= np.isfinite(wdist)[columns.workload_index]
    same = np.asarray([d.name == device.name for d in columns.devices])
    rows = np.nonzero(usable & same[columns.device_index])[0]
    device_rank = np.zeros(len(columns.devices))
    if len(rows) < MIN_ROWS_TO_WARM:
        present = np.zeros(len(columns.devices), dtype=bool)
        present[columns.device_index[usable]] = True
        ddist = device_distance(device, columns.devices)
        ddist[~present] = np.inf
        if not np.isfinite(ddist).any():
            return empty, np.zeros(0), np.zeros(0)
        device_rank = ddist
        rows = np.nonzero(usable & np.isfinite(ddist)[columns.device_index])[0]
        log.info("no corpus rows for device %s; transferring from %s", device.name,
                 [columns.devices[i].name for i in np.argsort(ddist) if np.isfinite(ddist[i])])
    dist = wdist[columns.workload_index[rows]]
    near = dist <= shape_radius
    if near.any():
        rows, dist = rows[near], dist[near]
    groups, keys = group_rows(columns.workload_index[rows], columns.device_index[rows], len(columns.devices))
    relative = relative_to_best(columns.latency_us[rows], groups, len(keys))
    order = np.lexsort((relative, np.round(dist, 3), device_rank[columns.device_index[rows]]))
    rows, dist, relative = rows[order], dist[order], relative[order]
    _, first = np.unique(columns.config_index[rows], return_index=True)
    first.sort()
    return rows[first], dist[first], relative[first]


def _seed(columns: CorpusColumns, row: int, dist: float, relative: float) -> Seed:
    workload = columns.workloads[columns.workload_index[row]]
    device = columns.devices[columns.device_index[row]].name
    source = columns.source[row] if columns.source is not None else None
    return Seed(
        config=dict(columns.configs[columns.config_index[row]]),
        latency_us=float(columns.latency_us[row]),
        distance=float(dist),
        workload=workload,
        device=device,
        source=source or f"{workload.kind}:{workload.name} on {device}",
        relative=float(relative),
    )


def warm_start(workload: Workload, device: Device | str, corpus: Corpus | None, *, k: int = 3,
               shape_radius: float = 1.0, backend: Backend | None = None,
               kinds: Sequence[MeasurementKind] = DEFAULT_KINDS) -> list[Seed]:
    """Up to ``k`` best-known configs for ``workload`` on ``device``, best first; [] is a cold start.

    Seeds come from the same shape, else the nearest within ``shape_radius``, else any workload that
    transfers; each config once. With no data for ``device``, they come from the most similar devices
    by specs (``Seed.device`` says which). Seeds ``backend`` would refuse are left out.
    """
    if k <= 0:
        return []
    columns = corpus_columns(corpus)
    target = _as_device(device)
    rows, dists, relatives = _ordered_rows(workload, target, columns, shape_radius, kinds)
    seeds: list[Seed] = []
    refused = 0
    for row, dist, relative in zip(rows, dists, relatives):
        seed = _seed(columns, int(row), dist, relative)
        if backend is not None:
            try:
                backend.validate(workload, target, seed.config)
            except InvalidConfigError:
                refused += 1
                continue
        seeds.append(seed)
        if len(seeds) >= k:
            break
    if refused:
        log.info("warm_start: %d seed(s) left out because the %s backend refuses them", refused, backend.name)
    return seeds


def cold_start_reason(workload: Workload, device: Device | str, corpus: Corpus | None,
                      kinds: Sequence[MeasurementKind] = DEFAULT_KINDS) -> str:
    """Why :func:`warm_start` has no seed for ``workload`` on ``device``, in one sentence with what to do."""
    columns = corpus_columns(corpus)
    target = _as_device(device)
    usable = columns.mask(kinds=tuple(kinds), verdicts=(Verdict.PASS,)) if len(columns) else np.zeros(0, bool)
    kind_names = "/".join(k.value for k in kinds)
    if not usable.any():
        return (f"the corpus has no passing {kind_names} record (--kind chooses which measurement kinds count)")
    present = np.unique(columns.workload_index[usable])
    same_kernel = [columns.workloads[i] for i in present
                   if columns.workloads[i].kind == workload.kind and columns.workloads[i].name == workload.name]
    transferable = [i for i in present if math.isfinite(workload_distance(workload, columns.workloads[i]))]
    if not transferable and same_kernel and workload.kind != DECODE_KIND:
        shapes = "; ".join(sorted({json.dumps(w.shape, sort_keys=True) for w in same_kernel})[:3])
        given = json.dumps(workload.shape, sort_keys=True) if workload.shape else "none"
        return (f"the corpus has {workload.kind}:{workload.name} only with shapes of another form ({shapes}; given: "
                f"{given}): give one of that form (--problem-size or --shape)")
    if not transferable:
        return f"no {kind_names} record in the corpus transfers to {workload.kind}:{workload.name}"
    rows = usable & np.isin(columns.workload_index, transferable)
    if not np.isfinite(device_distance(target, [columns.devices[i] for i in np.unique(columns.device_index[rows])])).any():
        from amk.core.devices import KNOWN_DEVICES

        return (f"the corpus has this workload only on devices whose specs cannot be compared with "
                f"{target.name}'s (its specs are unknown): name a known device ({', '.join(KNOWN_DEVICES)})")
    return "nothing usable for this workload on this device"


def warm_start_combined(model_shape: ModelShape, device: Device | str, corpus: Corpus | None, *, k: int = 3,
                        shape_radius: float = 1.0, dtype: str | None = None,
                        kinds: Sequence[MeasurementKind] = DEFAULT_KINDS,
                        ) -> list[tuple[ScheduleConfig, dict[str, int]]]:
    """Like :func:`warm_start` for the decode workload of ``model_shape``, as (schedule, kernel knobs) pairs.

    A record without kernel knobs yields the knob defaults; a record whose schedule is not a valid
    ScheduleConfig is passed over (and counted in the log).
    """
    if k <= 0:
        return []
    extra = {"dtype": dtype} if dtype else {}
    workload = Workload.decode("warm-start target", model_shape, **extra)
    columns = corpus_columns(corpus)
    rows, _dists, _rel = _ordered_rows(workload, _as_device(device), columns, shape_radius, kinds)
    out: list[tuple[ScheduleConfig, dict[str, int]]] = []
    seen: set[str] = set()
    invalid = 0
    for row in rows:
        try:
            schedule = ScheduleConfig.from_dict(columns.configs[columns.config_index[row]], ignore_unknown=True)
        except ValidationError:
            invalid += 1
            continue
        key = json.dumps(schedule.to_dict(), sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out.append((schedule, schedule.kernel_knobs.to_dict()))
        if len(out) >= k:
            break
    if invalid:
        log.info("warm_start_combined: %d corpus schedule(s) passed over as not valid ScheduleConfigs", invalid)
    return out


# --------------------------------------------------------------------------------------------------
# the learned ranking prior
# --------------------------------------------------------------------------------------------------

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

    def __init__(self, featurizer: Featurizer, ranker: Ranker, *, trained: bool, n_rows: int) -> None:
        self.featurizer = featurizer
        self.ranker = ranker
        self.trained = trained
        self.n_rows = n_rows

    def __repr__(self) -> str:
        state = f"trained on {self.n_rows} rows" if self.trained else f"untrained ({self.n_rows} rows)"
        return f"Prior({self.featurizer.name}, {self.ranker.name}, {state})"

    def features(self, workload: Workload, device: Device | str,
                 configs: Sequence[Mapping[str, Any] | ScheduleConfig]) -> np.ndarray:
        n = len(configs)
        zeros = np.zeros(n, dtype=np.int64)
        return self.featurizer.transform_indexed([workload], [_as_device(device)],
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
        (folder / "prior.json").write_text(json.dumps(doc, indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Prior:
        """Read a prior :meth:`save` wrote; nothing in the files is executed."""
        from amk.core.config import structure_options
        from amk.core.plugins import get_registry

        folder = Path(path)
        try:
            doc = json.loads((folder / "prior.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AmkError(f"{folder}: no readable prior.json ({exc}); is it a directory a prior was saved to?") \
                from None
        registry = get_registry()
        feat_impl = registry.get("featurizer", doc["featurizer"])
        options = structure_options(feat_impl.cls.Options, doc["featurizer_options"], where=str(folder),
                                    label=f"featurizer {doc['featurizer']!r}")
        featurizer = registry.create("featurizer", doc["featurizer"], options).set_state(doc["featurizer_state"])
        ranker_cls = registry.get("ranker", doc["ranker"]).cls
        ranker = ranker_cls.load(folder / "ranker")
        return cls(featurizer, ranker, trained=True, n_rows=int(doc["n_rows"]))


def _create(kind: str, spec: Any) -> Any:
    if not isinstance(spec, str):
        return spec
    from amk.core.plugins import get_registry

    return get_registry().create(kind, spec)


def fit_prior(training: TrainingSet, featurizer: str | Featurizer = "amk", ranker: str | Ranker = "knn") -> Prior:
    """Fit ``featurizer`` and ``ranker`` on ``training`` (untrained below MIN_ROWS_TO_RANK rows)."""
    feat = _create("featurizer", featurizer)
    model = _create("ranker", ranker)
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
    if hasattr(model, "set_feature_names"):  # rankers that treat some columns apart (replay: the device's)
        model.set_feature_names(feat.feature_names)
    model.fit(X, np.log(training.target), training.groups)
    return Prior(feat, model, trained=True, n_rows=n)


def make_ranker(corpus: Corpus | None, *, device: str | None = None, featurizer: str | Featurizer = "amk",
                ranker: str | Ranker = "knn", kinds: Sequence[MeasurementKind] = DEFAULT_KINDS,
                workload_kind: str | None = None) -> Prior:
    """Train a :class:`Prior` on the corpus (only ``device``'s rows when given; all devices by default, so
    knowledge transfers through device specs). Call again to retrain as the corpus grows."""
    training = load_points(corpus, device=device, workload_kind=workload_kind, kinds=kinds)
    if training.skipped:
        log.info("make_ranker: %d row(s) without a usable latency left out", training.skipped)
    return fit_prior(training, featurizer, ranker)


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
