"""Warm starts: the best-known configs for the same or the nearest workload on the same (or a similar) device.

An empty list is an honest cold start, never an invented seed; :func:`cold_start_reason` says why in one
sentence with what to do. Shapes come from the records (never from names).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from amk.core.backend import Backend
from amk.core.columns import CorpusColumns
from amk.core.devices import KNOWN_DEVICES, Device
from amk.core.errors import InvalidConfigError, LeftOutWarning, ValidationError
from amk.core.records import MeasurementKind, Verdict
from amk.core.workload import Workload
from amk.decode.schedule import ScheduleConfig
from amk.decode.shapes import ModelShape
from amk.decode.workload import DECODE_KIND, decode_workload
from amk.prior.distance import as_device, device_distance, workload_distance
from amk.prior.training import DEFAULT_KINDS, Corpus, corpus_columns, group_rows, relative_to_best

log = logging.getLogger("amk.prior")

MIN_ROWS_TO_WARM = 1  # below this many usable rows for a device warm_start returns [] (a cold start)


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
        log.debug("no corpus rows for device %s; transferring from %s", device.name,
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
    target = as_device(device)
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
        warnings.warn(f"warm start: {refused} corpus config(s) left out because the {backend.name} backend refuses "
                      f"them for {workload.name} on {target.name}", LeftOutWarning, stacklevel=2)
    return seeds


def cold_start_reason(workload: Workload, device: Device | str, corpus: Corpus | None,
                      kinds: Sequence[MeasurementKind] = DEFAULT_KINDS) -> str:
    """Why :func:`warm_start` has no seed for ``workload`` on ``device``, in one sentence with what to do."""
    columns = corpus_columns(corpus)
    target = as_device(device)
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
        names = sorted({w.name for w in (columns.workloads[i] for i in present) if w.kind == workload.kind})
        close = difflib.get_close_matches(workload.name, names, n=3)  # a typo'd name
        hint = f" (did you mean {' or '.join(f'{workload.kind}:{n}' for n in close)}?)" if close else ""
        return f"no {kind_names} record in the corpus transfers to {workload.kind}:{workload.name}{hint}"
    rows = usable & np.isin(columns.workload_index, transferable)
    if not np.isfinite(device_distance(target, [columns.devices[i] for i in np.unique(columns.device_index[rows])])).any():
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
    workload = decode_workload("warm-start target", model_shape, **extra)
    columns = corpus_columns(corpus)
    rows, _dists, _rel = _ordered_rows(workload, as_device(device), columns, shape_radius, kinds)
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
        warnings.warn(f"warm start: {invalid} corpus schedule(s) left out because they are not valid "
                      "ScheduleConfigs", LeftOutWarning, stacklevel=2)
    return out
