"""How alike two devices are for tuning: learned from the corpus where it allows, from specs otherwise.

Two devices that measured the same configs of the same workloads either rank them alike or not. The
similarity learned from the corpus is Spearman's rank correlation of the two devices' latencies over the
configs both measured (PASS rows of the kinds asked for), per workload, averaged with the number of
shared configs as weights; it is used when they share at least ``MIN_SHARED_CONFIGS`` configs. Otherwise
it comes from the specs, ``exp(-device_distance)`` (architecture first, then bandwidth and SM count:
:func:`amk.prior.distance.device_distance`), and is unknown (NaN) when neither is available, for example
two devices whose specs and architecture amk does not know and that never measured the same configs.

Nothing here assumes a vendor: the corpus part only reads measurements, and architectures compare by
their ``Device.arch`` strings (:func:`amk.prior.features.arch_penalty`).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from amk.core.columns import CorpusColumns
from amk.core.devices import Device
from amk.core.records import MeasurementKind, Verdict
from amk.core.workload import Workload
from amk.prior.distance import device_distance
from amk.prior.evaluation import spearman
from amk.prior.training import DEFAULT_KINDS

MIN_SHARED_CONFIGS = 20  # configs two devices must both have measured for a learned similarity


@attrs.frozen
class Similarity:
    """How alike ``device`` is to the target: ``value`` in [-1, 1] (learned: a rank correlation) or (0, 1]
    (specs: exp(-distance)); NaN when unknown. ``basis`` is "corpus", "specs" or "unknown"."""

    device: str
    value: float
    basis: str
    shared_configs: int = 0

    @property
    def weight(self) -> float:
        """A non-negative weight for averaging over devices (a device that ranks configs the other way
        round, or an unknown one, weighs 0)."""
        return float(max(self.value, 0.0)) if np.isfinite(self.value) else 0.0


def _best_latency_per_key(columns: CorpusColumns, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique (workload, config) keys, the least latency of each) over ``rows``."""
    keys = columns.workload_index[rows].astype(np.int64) * max(len(columns.configs), 1) + columns.config_index[rows]
    order = np.lexsort((columns.latency_us[rows], keys))
    keys, latency = keys[order], columns.latency_us[rows][order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    return keys[first], latency[first]


def rank_similarity(columns: CorpusColumns, a: str, b: str, *,
                    kinds: Sequence[MeasurementKind] = DEFAULT_KINDS,
                    exclude: Workload | None = None) -> tuple[float, int]:
    """(rank correlation, shared configs) of devices ``a`` and ``b`` over the configs both measured.

    Per workload (``exclude`` left out: the one being tuned, which the target has not measured),
    Spearman's correlation of their latencies, averaged with the number of shared configs as weights;
    NaN with 0 configs when they share none. Repeats of a config count with their least latency.
    """
    usable = columns.mask(kinds=tuple(kinds), verdicts=(Verdict.PASS,))
    usable &= np.isfinite(columns.latency_us) & (columns.latency_us > 0)
    if exclude is not None:
        excluded = [i for i, w in enumerate(columns.workloads) if w.key == exclude.key]
        usable &= ~np.isin(columns.workload_index, excluded)
    names = np.asarray([d.name for d in columns.devices], dtype=object)
    rows_a = np.flatnonzero(usable & (names[columns.device_index] == a)) if len(columns) else np.zeros(0, np.int64)
    rows_b = np.flatnonzero(usable & (names[columns.device_index] == b)) if len(columns) else np.zeros(0, np.int64)
    if not len(rows_a) or not len(rows_b):
        return float("nan"), 0
    keys_a, lat_a = _best_latency_per_key(columns, rows_a)
    keys_b, lat_b = _best_latency_per_key(columns, rows_b)
    shared, ia, ib = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    if len(shared) < 2:
        return float("nan"), len(shared)
    workload = shared // max(len(columns.configs), 1)
    total, weight = 0.0, 0
    for w in np.unique(workload):
        sel = workload == w
        if sel.sum() < 2:
            continue
        total += spearman(lat_a[ia[sel]], lat_b[ib[sel]]) * int(sel.sum())
        weight += int(sel.sum())
    return (total / weight if weight else float("nan")), len(shared)


def device_similarity(columns: CorpusColumns, target: Device, others: Sequence[Device], *,
                      kinds: Sequence[MeasurementKind] = DEFAULT_KINDS,
                      exclude: Workload | None = None) -> list[Similarity]:
    """The similarity of each of ``others`` to ``target``: learned from the corpus where they share at
    least MIN_SHARED_CONFIGS measured configs (``exclude``: a workload not to learn from), else from specs."""
    others = list(others)
    distance = device_distance(target, others) if others else np.zeros(0)
    out = []
    for other, dist in zip(others, distance):
        value, shared = rank_similarity(columns, target.name, other.name, kinds=kinds, exclude=exclude)
        if shared >= MIN_SHARED_CONFIGS and np.isfinite(value):
            out.append(Similarity(other.name, float(value), "corpus", shared))
        elif np.isfinite(dist):
            out.append(Similarity(other.name, float(np.exp(-dist)), "specs", shared))
        else:
            out.append(Similarity(other.name, float("nan"), "unknown", shared))
    return out
