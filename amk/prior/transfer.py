"""What other devices measured of the same kernel, knob by knob: the transfer sources of a tune target,
and the zero-shot order they give before the target has measured anything.

**Sources.** For each other device that measured the target's workload (same kind, name and shape), each
candidate's log latency relative to the best that device measured (0 = its best). Knobs are matched by
name (nested configs by their dotted names, :func:`amk.prior.features.flatten`), so a search space that
changed between kernel versions still transfers what it shares:

- a knob both have: matched by value (``2 == 2.0``; a bool equals 0/1);
- a knob only the corpus has (the old version's ``use_shmem``, say): each of its settings is a source of
  its own (``a100[use_shmem=1]``), since the new kernel behaves like one of them or none, and the tune
  loop learns which from its own measurements; beyond ``MAX_SLICES`` settings per device they are merged
  (the best over them);
- a knob only the target has: candidates that differ only in it share the sources' value, and the tune
  loop's own model tells them apart (what does not transfer is explored);
- a number a source did not measure (a tile size of 7 where the old space stopped at 4): the nearest it
  did (4): the trend up to the edge of what was measured is what transfers; a value that is not a number
  and was not measured leaves the config unknown (NaN) for that source.

A failure recorded on a source is its worst passing value plus ``FAILURE_PENALTY`` (the tune policy's
convention); a config the source never measured is NaN.

**The zero-shot order** (:func:`zero_shot`): pooled replay with each source device weighted by its
similarity to the target (:func:`amk.prior.similarity.device_similarity`: learned from the corpus where
it allows, specs otherwise; equal weights, i.e. plain pooled replay, when nothing is known). It reads only
the sources: nothing of the target's own measurements.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from amk.core.columns import KIND_CODES, VERDICT_CODES, CorpusColumns
from amk.core.devices import Device
from amk.core.records import MeasurementKind, Verdict
from amk.core.workload import Workload
from amk.prior.features import flatten
from amk.prior.similarity import Similarity
from amk.prior.training import DEFAULT_KINDS

FAILURE_PENALTY = 0.5  # a failure: this much worse (log latency) than the source's worst pass
MAX_SLICES = 8  # settings of corpus-only knobs kept as sources of their own, per device
MAX_SOURCE_DEVICES = 8  # the devices with the most records of the workload


_SCALARS = (int, float, bool, str, type(None))


def _flat(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``flatten(config)``, without the copy for a config of plain values (a Kernel Tuner config)."""
    return config if all(type(v) in _SCALARS for v in config.values()) else flatten(config)


def _value(value: Any) -> Any:
    """A knob value compared by value: 2 and 2.0 are one value, True and 1 too; "2" is not 2."""
    kind = type(value)
    if kind is bool:
        return int(value)
    if kind is float and value.is_integer():
        return int(value)
    if kind in (int, float):
        return value
    if kind is str:
        return ("s", value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _nearest(value: Any, measured: np.ndarray | None, exact: set) -> Any:
    """``value`` if measured, else the nearest measured number (None for a value that is not a number)."""
    if value in exact:
        return value
    if measured is None or not isinstance(value, (int, float)):
        return None
    return measured[int(np.argmin(np.abs(measured - value)))].item()


@attrs.frozen
class Sources:
    """Per candidate (rows) and source (columns): log latency relative to the source's best."""

    names: list[str]  # per column: the device, and the corpus-only knob settings of a slice
    devices: list[str]  # per column: the device it was measured on
    log_relative: np.ndarray  # (n, m) float; NaN where the source did not measure the config or it failed
    failed: np.ndarray  # (n, m) bool: the source recorded a failure for the config
    exact: np.ndarray | None = None  # (n, m) bool: measured as is (False: by the nearest values; None: all)
    shared_knobs: tuple[str, ...] = ()
    target_only_knobs: tuple[str, ...] = ()  # the target has them, no source does
    source_only_knobs: tuple[str, ...] = ()  # some source has them, the target does not

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def empty(cls, n: int) -> Sources:
        return cls([], [], np.zeros((n, 0)), np.zeros((n, 0), dtype=bool))

    def known_exactly(self) -> np.ndarray:
        """(n, m) bool: the source measured the config itself (passing or failing)."""
        known = ~np.isnan(self.log_relative) | self.failed
        return known if self.exact is None else known & self.exact

    def filled(self) -> np.ndarray:
        """Failures as the source's worst pass + FAILURE_PENALTY; configs it never measured stay NaN."""
        out = self.log_relative.copy()
        for j in range(out.shape[1]):
            column = out[:, j]
            if np.isnan(column).all():
                continue
            column[self.failed[:, j] & np.isnan(column)] = np.nanmax(column) + FAILURE_PENALTY
        return out

    def device_weights(self, similarity: Mapping[str, float]) -> np.ndarray:
        """Per column: its device's similarity weight split over that device's columns (a device counts
        once, however many slices it has); equal weights where no similarity is known. A device whose
        similarity is unknown (NaN or absent) while others' are known weighs the mean known weight: it is
        not known to be less alike than the others (a new vendor's device amk has no specs for, say)."""
        given = [similarity.get(d, math.nan) for d in self.devices]
        finite = [w for w in given if math.isfinite(w)]
        if not any(w > 0 for w in finite):
            known = [1.0] * len(self.devices)
        else:
            mean = sum(finite) / len(finite)
            known = [w if math.isfinite(w) else mean for w in given]
        counts = {d: self.devices.count(d) for d in set(self.devices)}
        return np.asarray([w / counts[d] for w, d in zip(known, self.devices)], dtype=np.float64)


def transfer_sources(columns: CorpusColumns, workload: Workload, device: Device,
                     record_configs: Sequence[Mapping[str, Any]],
                     kinds: Sequence[MeasurementKind] = DEFAULT_KINDS) -> Sources:
    """The :class:`Sources` of ``record_configs`` (the candidates as records store them) on ``device``:
    what each other device measured of ``workload`` (see the module docstring). Rows of ``kinds`` only,
    failures included; the target's own device is not a source."""
    n = len(record_configs)
    if len(columns) == 0 or n == 0:
        return Sources.empty(n)
    wanted = [i for i, w in enumerate(columns.workloads) if w.key == workload.key]
    kind_codes = [KIND_CODES.index(k) for k in kinds]
    rows = np.flatnonzero(np.isin(columns.workload_index, wanted) & np.isin(columns.kind, kind_codes))
    others = [d for d in np.unique(columns.device_index[rows]).tolist() if columns.devices[d].name != device.name]
    if not others:
        return Sources.empty(n)
    counts = {d: int((columns.device_index[rows] == d).sum()) for d in others}
    others = sorted(others, key=lambda d: (-counts[d], columns.devices[d].name))[:MAX_SOURCE_DEVICES]

    flats = [_flat(c) for c in record_configs]
    target_knobs = sorted({k for f in flats for k in f})
    target_set = set(target_knobs)
    pass_code = VERDICT_CODES.index(Verdict.PASS)
    cell_keys: dict[int, tuple[tuple[str, ...], tuple, tuple] | None] = {}

    def cell_key(ci: int) -> tuple[tuple[str, ...], tuple, tuple] | None:
        """(shared knob names, the corpus-only knob setting, the shared values) of a corpus config."""
        if ci not in cell_keys:
            flat = _flat(columns.configs[ci])
            shared = tuple(k for k in sorted(flat) if k in target_set)
            only = tuple((k, _value(flat[k])) for k in sorted(flat) if k not in target_set)
            cell_keys[ci] = (shared, only, tuple(_value(flat[k]) for k in shared)) if shared else None
        return cell_keys[ci]

    names, devices, cols, fails, exacts = [], [], [], [], []
    shared_all: set[str] = set()
    source_only_all: set[str] = set()
    passed = (columns.verdict == pass_code) & np.isfinite(columns.latency_us) & (columns.latency_us > 0)
    for d in others:
        mine = rows[columns.device_index[rows] == d]
        # knob names -> corpus-only setting -> shared values -> [least passing latency, any failure]
        cells: dict[tuple[str, ...], dict[tuple, dict[tuple, list]]] = {}
        for ci, ok, latency in zip(columns.config_index[mine].tolist(), passed[mine].tolist(),
                                   columns.latency_us[mine].tolist()):
            key = cell_key(ci)
            if key is None:
                continue
            cell = cells.setdefault(key[0], {}).setdefault(key[1], {}).setdefault(key[2], [math.inf, False])
            if ok:
                cell[0] = min(cell[0], latency)
            else:
                cell[1] = True
        for shared, settings in cells.items():
            shared_all.update(shared)
            source_only_all.update(k for setting in settings for k, _ in setting)
            if len(settings) > MAX_SLICES:  # merged: the best over the corpus-only settings
                merged: dict[tuple, list] = {}
                for cells_of in settings.values():
                    for values, (lat, failed) in cells_of.items():
                        m = merged.setdefault(values, [math.inf, False])
                        m[0], m[1] = min(m[0], lat), m[1] or failed
                settings = {(("*", 0),): merged}
            wanted_values = [tuple(_value(f.get(k)) for k in shared) for f in flats]
            for setting, cells_of in sorted(settings.items(), key=lambda kv: str(kv[0])):
                best = min((lat for lat, _ in cells_of.values()), default=math.inf)
                if not math.isfinite(best):
                    continue
                # Values this source measured, per knob: a candidate value it did not measure is matched to
                # the nearest number it did (a tile size the old space lacked takes the largest it had).
                exact = [{v[j] for v in cells_of} for j in range(len(shared))]
                numbers = [np.asarray(sorted(nums), dtype=np.float64) if nums else None
                           for nums in ([v for v in e if type(v) in (int, float)] for e in exact)]
                col = np.full(n, np.nan)
                failed = np.zeros(n, dtype=bool)
                exact_here = np.ones(n, dtype=bool)
                matched: dict[tuple, tuple | None] = {}
                for i, values in enumerate(wanted_values):
                    cell = cells_of.get(values)
                    if cell is None:
                        exact_here[i] = False
                        if values not in matched:
                            near = tuple(_nearest(v, numbers[j], exact[j]) for j, v in enumerate(values))
                            matched[values] = None if None in near else near
                        cell = cells_of.get(matched[values]) if matched[values] is not None else None
                        if cell is None:
                            continue
                    if math.isfinite(cell[0]):
                        col[i] = math.log(cell[0] / best)
                    elif cell[1]:
                        failed[i] = True
                if np.isnan(col).all() and not failed.any():
                    continue
                name = columns.devices[d].name
                label = ",".join(f"{k}={v[1] if isinstance(v, tuple) else v}" for k, v in setting if k != "*")
                names.append(f"{name}[{label}]" if label else name)
                devices.append(name)
                cols.append(col)
                fails.append(failed)
                exacts.append(exact_here)
    if not cols:
        return Sources.empty(n)
    return Sources(names, devices, np.column_stack(cols), np.column_stack(fails), np.column_stack(exacts),
                   tuple(sorted(shared_all)),
                   tuple(k for k in target_knobs if k not in shared_all), tuple(sorted(source_only_all)))


# ----------------------------------------------------------------------------------------------------
# The zero-shot order: lower = measured first; NaN where no source knows the config.

def weighted_support(filled: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the weights of the sources that know it, normalised (zeros where none does), and their sum."""
    w = np.where(np.isnan(filled), 0.0, weights[None, :])
    total = w.sum(axis=1)
    return w / np.where(total > 0, total, 1.0)[:, None], total


def pooled_score(filled: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Log of the weighted mean relative latency over the sources that know each config (NaN: none does).
    With equal weights and every source knowing every config, the order of plain pooled replay."""
    w, total = weighted_support(filled, weights)
    mean = (w * np.exp(np.nan_to_num(filled))).sum(axis=1)
    return np.where(total > 0, np.log(np.maximum(mean, 1e-300)), np.nan)


def order_of(score: np.ndarray, support: np.ndarray | None = None) -> np.ndarray:
    """Indices by score (NaN last); ties by ``support`` (more first), then by index."""
    score = np.where(np.isnan(score), np.inf, score)
    support = np.zeros(len(score)) if support is None else support
    return np.lexsort((np.arange(len(score)), -support, score))


@attrs.frozen
class ZeroShot:
    """The order before the target has measured anything: per candidate its score (NaN: no source knows
    it), whether a source measured it as is (``exact``; False: known by the nearest values only), the
    similarity weight behind it, and what the order is made of."""

    scores: np.ndarray
    exact: np.ndarray
    support: np.ndarray
    description: str

    def order(self) -> np.ndarray:
        """Configs some source measured as is, by score (ties: more support first); then configs known by
        their nearest values, by score; then the unknown; each tier in index order at equal keys."""
        tier = np.where(self.exact, 0, np.where(np.isnan(self.scores), 2, 1))
        score = np.where(np.isnan(self.scores), np.inf, self.scores)
        return np.lexsort((np.arange(len(score)), -self.support, score, tier))

    def positions(self) -> np.ndarray:
        """Each candidate's place in :meth:`order` (0 = first), NaN where no source knows it: a score the
        tune policy can rank by."""
        out = np.empty(len(self.scores))
        out[self.order()] = np.arange(len(self.scores), dtype=np.float64)
        return np.where(np.isnan(self.scores), np.nan, out)


def zero_shot(sources: Sources, similarity: Sequence[Similarity] = ()) -> ZeroShot:
    """Pooled replay weighted by device similarity: each candidate's mean latency relative to each source's
    best, each source device weighing its similarity to the target (equal when none is known: then it is
    plain pooled replay). Failures count as the source's worst pass plus FAILURE_PENALTY.

    A config some source measured as is is scored from those sources only and comes before every config
    known only by its nearest values (a value the sources never measured, or a knob they do not have): what
    was measured is knowledge, what was matched to its nearest is a guess the tune loop checks.

    Why this order, fixed: leave-one-device-out over the source devices cannot tell orders apart with two
    sources (one predicts the other, whatever the combination) and, with three, chose by noise on the dev
    data (bench/search_nested.py, bench/RESULTS.md "Search": picking among pooled, geometric, median and
    best-of by inner leave-one-device-out needed more evaluations than pooled on 2 of 14 targets and fewer
    on none).
    """
    filled = sources.filled()
    weights = sources.device_weights({s.device: s.weight if s.basis != "unknown" else math.nan for s in similarity})
    exact = sources.known_exactly()
    has_exact = exact.any(axis=1)
    use = np.where(has_exact[:, None], np.where(exact, filled, np.nan), filled)
    _, support = weighted_support(np.where(exact, filled, np.nan), weights)
    basis = sorted({s.basis for s in similarity if s.weight > 0})
    if basis and any(s.basis == "unknown" for s in similarity):
        basis.append("unknown: the mean weight")
    how = f"weighted by similarity ({', '.join(basis)})" if basis else "equal weights"
    return ZeroShot(pooled_score(use, weights), has_exact, support,
                    f"mean relative latency on {', '.join(sorted(set(sources.devices)))}, {how}")
