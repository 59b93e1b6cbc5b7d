"""``CorpusColumns``: the corpus as factorised columns, the form training and warm starts read.

Rows are records; workloads, devices and configs are stored once each in unique tables and referenced
by integer index columns, so a million records that share a few thousand configs featurize each config
once. Stores may build this faster than from records (one SQL query); the result must be the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np

from amk.core.devices import Device
from amk.core.records import MeasurementKind, Record, Verdict
from amk.core.workload import Workload

VERDICT_CODES: tuple[Verdict, ...] = tuple(Verdict)
KIND_CODES: tuple[MeasurementKind, ...] = tuple(MeasurementKind)


def config_key(config: Mapping[str, Any]) -> str:
    """Canonical JSON of a config: equal configs have equal keys."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


@attrs.frozen
class CorpusColumns:
    """Factorised columns of a set of records (see the module docstring)."""

    workloads: list[Workload]  # unique table
    devices: list[Device]  # unique table
    configs: list[dict[str, Any]]  # unique table
    workload_index: np.ndarray  # int32 per row -> workloads
    device_index: np.ndarray  # int32 per row -> devices
    config_index: np.ndarray  # int32 per row -> configs
    latency_us: np.ndarray  # float64 per row; NaN where there is none
    bound_us: np.ndarray  # float64 per row; NaN where unknown
    verdict: np.ndarray  # int8 per row -> VERDICT_CODES
    kind: np.ndarray  # int8 per row -> KIND_CODES
    timestamp: np.ndarray  # float64 per row; NaN where unknown
    # object per row: where the record came from (provenance.source); None when a store does not carry it
    source: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.latency_us.shape[0])

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> CorpusColumns:
        builder = ColumnsBuilder()
        for record in records:
            builder.add(record)
        return builder.build()

    def mask(self, *, device: str | None = None, verdicts: Iterable[Verdict] | None = None,
             kinds: Iterable[MeasurementKind] | None = None, workload_kind: str | None = None) -> np.ndarray:
        """A boolean row mask for the given filters (None matches everything)."""
        import numpy as np
        keep = np.ones(len(self), dtype=bool)
        if device is not None:
            ids = [i for i, d in enumerate(self.devices) if d.name == device]
            keep &= np.isin(self.device_index, ids)
        if workload_kind is not None:
            ids = [i for i, w in enumerate(self.workloads) if w.kind == workload_kind]
            keep &= np.isin(self.workload_index, ids)
        if verdicts is not None:
            keep &= np.isin(self.verdict, [VERDICT_CODES.index(v) for v in verdicts])
        if kinds is not None:
            keep &= np.isin(self.kind, [KIND_CODES.index(k) for k in kinds])
        return keep

    def best_configs(self, per_workload: int) -> CorpusColumns:
        """Best-of aggregation: per (workload, config) its fastest PASS sample, then per workload the
        ``per_workload`` fastest configs.

        Rows without a PASS verdict or a latency are dropped. Ties break by append order (earlier first).
        The result is ordered by workload (first appearance), then latency; unique tables are kept whole.
        """
        import numpy as np
        if per_workload < 1:
            raise ValueError(f"per_workload={per_workload!r} must be >= 1")
        rows = np.flatnonzero((self.verdict == VERDICT_CODES.index(Verdict.PASS)) & np.isfinite(self.latency_us))
        # Sorted by workload, then latency, then append order (lexsort: the last key is the primary one).
        rows = rows[np.lexsort((rows, self.latency_us[rows], self.workload_index[rows]))]
        pair = self.workload_index[rows].astype(np.int64) * max(1, len(self.configs)) + self.config_index[rows]
        _, first = np.unique(pair, return_index=True)
        rows = rows[np.sort(first)]  # the fastest sample of each (workload, config), order kept
        workload = self.workload_index[rows]
        starts = np.flatnonzero(np.r_[True, workload[1:] != workload[:-1]])
        rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        return self.take(rows[rank < per_workload])

    def compact(self) -> CorpusColumns:
        """The same rows with unique tables cut to the entries the rows use, in order of first use."""
        workload_index, workloads = first_use_factorize(self.workload_index, self.workloads)
        device_index, devices = first_use_factorize(self.device_index, self.devices)
        config_index, configs = first_use_factorize(self.config_index, self.configs)
        return attrs.evolve(self, workloads=workloads, devices=devices, configs=configs,
                            workload_index=workload_index, device_index=device_index, config_index=config_index)

    def take(self, rows: np.ndarray) -> CorpusColumns:
        """The subset of rows selected by a boolean mask or an index array (unique tables kept whole)."""
        return attrs.evolve(
            self, **{f: getattr(self, f)[rows] for f in (
                "workload_index", "device_index", "config_index", "latency_us", "bound_us", "verdict",
                "kind", "timestamp")},
            source=None if self.source is None else self.source[rows],
        )


def first_use_factorize(index: np.ndarray, table: list) -> tuple[np.ndarray, list]:
    """Renumber ``index`` (positions in ``table``) densely in order of first use; returns (index, table)."""
    import numpy as np
    if len(index) == 0:
        return np.zeros(0, dtype=np.int32), []
    used, first, inverse = np.unique(index, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank[inverse.reshape(-1)], [table[i] for i in used[order]]


class ColumnsBuilder:
    """Accumulates rows and interns workloads, devices and configs into unique tables."""

    def __init__(self) -> None:
        self._workloads: dict[str, int] = {}
        self._devices: dict[Device, int] = {}
        self._configs: dict[str, int] = {}
        self.workloads: list[Workload] = []
        self.devices: list[Device] = []
        self.configs: list[dict[str, Any]] = []
        self._rows: dict[str, list] = {f: [] for f in (
            "workload_index", "device_index", "config_index", "latency_us", "bound_us", "verdict", "kind",
            "timestamp", "source")}

    @classmethod
    def extending(cls, columns: CorpusColumns) -> ColumnsBuilder:
        """A builder that starts with ``columns``' unique tables, so rows added after them share indices.

        ``build()`` then returns only the new rows; concatenate them after ``columns``' rows.
        """
        builder = cls()
        builder.workloads = list(columns.workloads)
        builder.devices = list(columns.devices)
        builder.configs = list(columns.configs)
        builder._workloads = {w.key: i for i, w in enumerate(builder.workloads)}
        builder._devices = {d: i for i, d in enumerate(builder.devices)}
        builder._configs = {config_key(c): i for i, c in enumerate(builder.configs)}
        return builder

    def add(self, record: Record) -> None:
        self.add_row(record.workload, record.device, record.config, record.measurement.latency_us,
                     record.measurement.bound_us, record.measurement.verdict, record.measurement.kind,
                     record.provenance.timestamp, source=record.provenance.source)

    def add_row(self, workload: Workload, device: Device, config: Mapping[str, Any], latency_us: float | None,
                bound_us: float | None, verdict: Verdict, kind: MeasurementKind, timestamp: float | None,
                config_json: str | None = None, source: str | None = None, workload_key: str | None = None) -> None:
        """One row; ``config_json``/``workload_key``, when given, are ``config_key(config)``/``workload.key``."""
        wkey = workload_key if workload_key is not None else workload.key
        wi = self._workloads.get(wkey)
        if wi is None:
            wi = self._workloads[wkey] = len(self.workloads)
            self.workloads.append(workload)
        di = self._devices.get(device)
        if di is None:
            di = self._devices[device] = len(self.devices)
            self.devices.append(device)
        ckey = config_json if config_json is not None else config_key(config)
        ci = self._configs.get(ckey)
        if ci is None:
            ci = self._configs[ckey] = len(self.configs)
            self.configs.append(dict(config))
        rows = self._rows
        rows["workload_index"].append(wi)
        rows["device_index"].append(di)
        rows["config_index"].append(ci)
        rows["latency_us"].append(math.nan if latency_us is None else latency_us)
        rows["bound_us"].append(math.nan if bound_us is None else bound_us)
        rows["verdict"].append(VERDICT_CODES.index(Verdict(verdict)))
        rows["kind"].append(KIND_CODES.index(MeasurementKind(kind)))
        rows["timestamp"].append(math.nan if timestamp is None else timestamp)
        rows["source"].append(source)

    def build(self) -> CorpusColumns:
        import numpy as np
        r = self._rows
        return CorpusColumns(
            workloads=self.workloads, devices=self.devices, configs=self.configs,
            workload_index=np.asarray(r["workload_index"], dtype=np.int32),
            device_index=np.asarray(r["device_index"], dtype=np.int32),
            config_index=np.asarray(r["config_index"], dtype=np.int32),
            latency_us=np.asarray(r["latency_us"], dtype=np.float64),
            bound_us=np.asarray(r["bound_us"], dtype=np.float64),
            verdict=np.asarray(r["verdict"], dtype=np.int8),
            kind=np.asarray(r["kind"], dtype=np.int8),
            timestamp=np.asarray(r["timestamp"], dtype=np.float64),
            source=_object_array(r["source"]),
        )


def _object_array(values: list) -> np.ndarray:
    import numpy as np
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
