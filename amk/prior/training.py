"""What the prior learns from: the corpus's usable rows as columns, with a target comparable everywhere.

The target of a row is its latency relative to the best latency known for the same workload on the same
device (1.0 = the best known, 2.0 = twice as slow). Unlike a raw latency or the original system's
percentage of the floor, it means the same thing for every workload and device, so one model can learn
from all of them; and only the measurement kinds and verdicts asked for train (measured PASS by default).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import numpy as np

from amk.core.columns import CorpusColumns
from amk.core.config import load_config
from amk.core.records import MeasurementKind, Record, Verdict
from amk.core.store import Store

Corpus = Store | CorpusColumns | Iterable[Record]
"""What every prior function accepts as its corpus: a store, its columns (read once, reused), or records."""

DEFAULT_KINDS: tuple[MeasurementKind, ...] = (MeasurementKind.MEASURED,)
DEFAULT_VERDICTS: tuple[Verdict, ...] = (Verdict.PASS,)


def corpus_columns(corpus: Corpus | None) -> CorpusColumns:
    """The corpus as columns; None means the store the effective config selects.

    Pass the columns themselves to functions called repeatedly: a store is read again on every call.
    """
    if isinstance(corpus, CorpusColumns):
        return corpus
    if isinstance(corpus, TrainingSet):
        return corpus.columns
    if corpus is None:
        with load_config().create(Store) as store:
            return store.columns()
    if isinstance(corpus, Store):
        return corpus.columns()
    return CorpusColumns.from_records(corpus)


@attrs.frozen
class TrainingSet:
    """The usable rows of a corpus, their targets and their groups (one group per workload + device)."""

    columns: CorpusColumns  # only the usable rows; the unique tables are the corpus's, kept whole
    target: np.ndarray  # float64 per row: latency / best latency of its group, >= 1.0
    groups: np.ndarray  # int32 per row: its group's number
    group_keys: np.ndarray  # (n_groups, 2) int32: the workload and device index of each group
    skipped: int  # rows that matched the filters but had no usable latency

    def __len__(self) -> int:
        return len(self.target)

    @property
    def latency_us(self) -> np.ndarray:
        return self.columns.latency_us

    def take(self, rows: np.ndarray) -> TrainingSet:
        """The subset of rows selected by a boolean mask or an index array (targets kept as they were)."""
        return TrainingSet(self.columns.take(rows), self.target[rows], self.groups[rows], self.group_keys, 0)

    def group_label(self, group: int) -> str:
        wi, di = self.group_keys[group]
        w = self.columns.workloads[wi]
        return f"{w.kind}:{w.name} on {self.columns.devices[di].name}"


def relative_to_best(latency: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Each latency over the smallest latency of its group."""
    best = np.full(n_groups, np.inf)
    np.minimum.at(best, groups, latency)
    return latency / best[groups]


def group_rows(workload_index: np.ndarray, device_index: np.ndarray,
               n_devices: int) -> tuple[np.ndarray, np.ndarray]:
    """(group number per row, (n_groups, 2) workload/device index of each group)."""
    combined = workload_index.astype(np.int64) * max(n_devices, 1) + device_index
    keys, groups = np.unique(combined, return_inverse=True)
    group_keys = np.stack([keys // max(n_devices, 1), keys % max(n_devices, 1)], axis=1).astype(np.int32)
    return groups.astype(np.int32), group_keys


def load_points(corpus: Corpus | None, *, device: str | None = None, workload_kind: str | None = None,
                kinds: Iterable[MeasurementKind] = DEFAULT_KINDS,
                verdicts: Iterable[Verdict] = DEFAULT_VERDICTS) -> TrainingSet:
    """The rows that may train the prior, as a :class:`TrainingSet`.

    Only rows of the given measurement ``kinds`` and ``verdicts`` (measured PASS by default), on
    ``device`` and of ``workload_kind`` when given, with a positive finite latency; others are left out
    and those that matched the filters but had no usable latency are counted in ``skipped``.
    Malformed records never get here: the store reports them (``store.problems()``).
    """
    columns = corpus_columns(corpus)
    mask = columns.mask(device=device, workload_kind=workload_kind, kinds=tuple(kinds), verdicts=tuple(verdicts))
    usable = mask & np.isfinite(columns.latency_us) & (columns.latency_us > 0)
    skipped = int(mask.sum() - usable.sum())
    subset = columns.take(usable)
    groups, group_keys = group_rows(subset.workload_index, subset.device_index, len(columns.devices))
    target = relative_to_best(subset.latency_us, groups, len(group_keys))
    return TrainingSet(subset, target, groups, group_keys, skipped)
