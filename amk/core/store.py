"""The store interface: append records durably, query them back, report what could not be read.

Records are immutable and the corpus is append-only. Measuring the same (workload, device, config,
backend version) again appends another record: a *sample*. Stores keep every sample; ``query`` and
``columns`` return each one, and aggregation is the reader's choice. ``best_configs`` aggregates
best-of: a (workload, config) is represented by its fastest PASS sample (each sample's latency is already
the median of its repeats, so best-of-medians is robust to one noisy run yet keeps the config's
achievable speed). Readers that want a typical cost take the median of ``columns`` rows per config.

Every method below has a generic implementation over ``_scan``; stores override what they can do faster
(SQL for counts, filters, columns and best configs). Overrides must return the same result.
"""

from __future__ import annotations

import collections
import json
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import attrs

from amk.core.columns import CorpusColumns, config_key
from amk.core.errors import UnsupportedOperationError
from amk.core.implementation import Implementation
from amk.core.records import MeasurementKind, Record, Verdict, record_id
from amk.core.workload import Workload


@attrs.frozen
class CorpusQuery:
    """Which records to return; every field left None matches everything."""

    device: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    workload_shape: Mapping[str, Any] | None = None  # exact match of the whole shape mapping
    verdict: Verdict | None = None
    kind: MeasurementKind | None = None
    since: float | None = None  # provenance.timestamp >= since
    until: float | None = None  # provenance.timestamp < until

    def matches(self, record: Record) -> bool:
        w, m, ts = record.workload, record.measurement, record.provenance.timestamp
        return (
            (self.device is None or record.device.name == self.device)
            and (self.workload_kind is None or w.kind == self.workload_kind)
            and (self.workload_name is None or w.name == self.workload_name)
            and (self.workload_shape is None or w.shape == dict(self.workload_shape))
            and (self.verdict is None or m.verdict == self.verdict)
            and (self.kind is None or m.kind == self.kind)
            and (self.since is None or (ts is not None and ts >= self.since))
            and (self.until is None or (ts is not None and ts < self.until))
        )


@attrs.frozen
class CorpusProblem:
    """A stored entry that could not be read: where it is and why."""

    where: str
    reason: str


@attrs.frozen
class CorpusStats:
    """Counts of a corpus by device, workload, kind and verdict, plus the unreadable entries."""

    total: int
    by_device: dict[str, int]
    by_workload: dict[str, int]
    by_kind: dict[str, int]
    by_verdict: dict[str, int]
    shapes: dict[str, list[dict[str, Any]]]  # workload label -> [{"shape": ..., "records": n}], most records first
    problems: int

    @classmethod
    def of(cls, records: Iterable[Record], problems: int = 0) -> CorpusStats:
        counters = {k: collections.Counter() for k in ("device", "workload", "kind", "verdict")}
        shapes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        total = 0
        for r in records:
            total += 1
            label = f"{r.workload.kind}:{r.workload.name}"
            counters["device"][r.device.name] += 1
            counters["workload"][label] += 1
            counters["kind"][r.measurement.kind.value] += 1
            counters["verdict"][r.measurement.verdict.value] += 1
            shapes[label][json.dumps(r.workload.shape, sort_keys=True)] += 1
        return cls(total, *(dict(sorted(counters[k].items())) for k in counters), shape_counts(shapes), problems)


def shape_counts(counts: Mapping[str, Mapping[str, int]]) -> dict[str, list[dict[str, Any]]]:
    """``CorpusStats.shapes`` from workload label -> {shape as sorted-key JSON: records}."""
    return {label: [{"shape": json.loads(shape), "records": n} for shape, n in sorted(c.items(), key=lambda i: (-i[1], i[0]))]
            for label, c in sorted(counts.items())}


def match_key(record: Record) -> tuple:
    """What two records with the same ``record_id`` must share (workload, device, config, verdict, kind, latency):
    cheap to compare without hashing the whole record; equal keys are only candidates for equal ids."""
    m = record.measurement
    return record.workload.key, record.device, config_key(record.config), m.verdict.value, m.kind.value, m.latency_us


class Store(Implementation):
    """A durable, append-only home for records. Subclasses implement ``append`` and ``_scan``; ``url_schemes``
    lists the URL schemes that select this store (``jsonl:PATH``), ``options_from_url`` turns one into options."""

    url_schemes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def options_from_url(cls, url: str) -> dict[str, Any]:
        raise UnsupportedOperationError(f"the {cls.name!r} store cannot be opened from a URL")

    @abstractmethod
    def append(self, records: Iterable[Record]) -> int:
        """Durably append every record (all or nothing per call where the store can); returns the count."""

    def append_new(self, records: Mapping[str, Record], *, identity: Callable[[Record], str] = record_id) -> int:
        """Append those of ``records`` (``identity(record)`` -> record, in order) this store does not hold, as
        ``known_ids`` matches them by ``identity``; returns how many were appended. What ``amk corpus import``
        (by ``content_id``) and ``copy`` (by ``record_id``) call. The check and the append are one step (the
        built-in stores hold the file lock, or one transaction with a unique key on the ``record_id``), so
        processes importing one file at once never duplicate a record. This default (``known_ids``, then
        ``append``) is NOT atomic: a store that can lock overrides it."""
        if not records:
            return 0
        known = self.known_ids(records, identity=identity)
        return self.append([r for rid, r in records.items() if rid not in known])

    def identity(self) -> Hashable | None:
        """What makes two handles one store whatever their URLs say (a file's device and inode, a database's
        own id), or None when unknown: ``amk corpus copy`` refuses a store onto itself by it, before writing."""
        return None

    @abstractmethod
    def _scan(self) -> Iterator[Record]:
        """Every readable record, in append order; unreadable entries go to ``problems()``."""

    def query(self, query: CorpusQuery | None = None) -> Iterator[Record]:
        """The records that match ``query`` (all when None), in append order."""
        query = query or CorpusQuery()
        return (r for r in self._scan() if query.matches(r))

    def count(self, query: CorpusQuery | None = None) -> int:
        return sum(1 for _ in self.query(query))

    def columns(self, query: CorpusQuery | None = None) -> CorpusColumns:
        """The matching records as factorised columns (what training and warm starts read)."""
        return CorpusColumns.from_records(self.query(query))

    def workloads(self, device: str | None = None, workload_kind: str | None = None) -> list[Workload]:
        """The distinct workloads with records (on ``device``, of ``workload_kind``), sorted by key."""
        seen = {r.workload.key: r.workload for r in self.query(CorpusQuery(device=device, workload_kind=workload_kind))}
        return [seen[k] for k in sorted(seen)]

    def best_configs(self, device: str, *, workload_kind: str | None = None,
                     workloads: Iterable[Workload] | None = None, per_workload: int = 3,
                     kinds: Iterable[MeasurementKind] | None = (MeasurementKind.MEASURED,)) -> CorpusColumns:
        """The ``per_workload`` fastest configs of each workload on ``device``, as compact columns.

        Only PASS records with a latency count, of the given measurement ``kinds`` (None: any kind);
        ``workloads`` limits the answer to those workloads (None: every workload, of ``workload_kind``
        when given). Samples aggregate best-of (see the module docstring): one row per (workload,
        config), its fastest sample. Rows are ordered by workload (first appearance), then latency, then
        append order.
        """
        import numpy as np
        cols = self.columns(CorpusQuery(device=device, workload_kind=workload_kind, verdict=Verdict.PASS))
        keep = cols.mask(kinds=None if kinds is None else list(kinds))
        if workloads is not None:
            wanted = {w.key for w in workloads}
            ids = [i for i, w in enumerate(cols.workloads) if w.key in wanted]
            keep &= np.isin(cols.workload_index, ids)
        return cols.take(keep).compact().best_configs(per_workload).compact()

    def known_ids(self, records: Mapping[str, Record], *,
                  identity: Callable[[Record], str] = record_id) -> set[str]:
        """Those ids of ``records`` (``identity(record)`` -> record) whose record this store holds, readable.

        ``identity`` is ``record_id`` (the exact record) or ``content_id`` (the record wherever it was read
        from: what ``amk corpus import`` asks).

        What an import asks to skip records it already holds. The records are given with their ids so a
        store can match by content first (``match_key``): only a stored record of the same workload,
        device, config, verdict, kind and latency can have the same id, and only those are hashed.
        Nothing is remembered between calls, so a record appended meanwhile (by any process) is seen.
        This default reads every record; stores with an index or a columns cache find the few candidates
        without reading the rest.
        """
        if not records:
            return set()
        wanted = {match_key(r) for r in records.values()}
        return {rid for rid in (identity(r) for r in self.query() if match_key(r) in wanted) if rid in records}

    def problems(self) -> list[CorpusProblem]:
        """Entries found unreadable by the last full read (malformed, torn, from a newer schema)."""
        return []

    def stats(self) -> CorpusStats:
        stats = CorpusStats.of(self.query())  # streamed: problems are known once the read has finished
        return attrs.evolve(stats, problems=len(self.problems()))

    def migrate(self) -> str:
        """Rewrite every record in the current schema, keeping a backup; returns a one-line report."""
        raise UnsupportedOperationError(f"the {self.name!r} store does not support migrate; copy it into a new store instead.")

    def describe(self) -> str:
        """Where this store keeps its records, for messages (by default its name and its ``path`` option)."""
        return f"{self.name}:{path}" if isinstance(path := getattr(self.options, "path", None), str) else self.name

    def close(self) -> None:
        """Release files, connections and locks."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
