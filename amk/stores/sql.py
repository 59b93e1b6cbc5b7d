"""What the sqlite and postgres stores share: the table layout, records as rows and back, queries as SQL.

Layout (the same tables in both databases)::

    amk_meta              key -> value: the layout version, the record schema version that wrote it
    amk_workloads         id, key (Workload.key), kind, name, shape (canonical JSON)   one row per workload
    amk_devices           id, key (canonical JSON of the Device), name                 one row per device
    amk_configs           id, key (canonical JSON of the config)                       one row per config
    amk_device_workloads  (device_id, workload_id): which workloads have records on which device
    amk_records           id (append order), schema_version, workload_id, device_id, config_id, verdict,
                          kind, latency_us, bound_us, timestamp, source: the narrow table queries filter and
                          training reads, indexed by (device, workload, verdict, kind, latency, config,
                          schema version), which answers best_configs without reading rows, and by time
    amk_bodies            id -> the rest of the record as JSON: the measurement's other fields (spread,
                          samples, reason) and the provenance but its timestamp and source (a row of
                          schema 0, the original system's record, holds that record whole)
    amk_unreadable        id -> why: rows a full read found unreadable (a damaged body); count, columns,
                          stats and best_configs leave them out, as query() does, and problems() lists them

``amk_records.record_id`` is the record's ``record_id`` for rows appended by ``append_new`` (imports,
copies), NULL for plain appends, with a unique index: two processes importing one file at once cannot
both insert a record, whatever their timing. ``amk_meta`` holds ``store_id``, a random id made when the
tables are created: what ``identity()`` compares (for postgres; sqlite compares the file).

A record is stored losslessly: reading joins its row, its workload, device and config, and its body
back into the record dict and structures it through ``record_from_dict`` (so a row from a newer schema
is refused and reported, never dropped). ``columns`` and ``best_configs`` read only the narrow table and
the small unique tables, so training never parses a record.
"""

from __future__ import annotations

import collections
import copy
import json
import operator
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar, NamedTuple

import attrs
import numpy as np

from amk.core.columns import KIND_CODES, VERDICT_CODES, CorpusColumns, config_key, first_use_factorize
from amk.core.devices import Device
from amk.core.errors import RecordError, SchemaVersionError, StoreError, ValidationError
from amk.core.inputs import parse_json
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import (
    Measurement,
    MeasurementKind,
    Provenance,
    Record,
    Verdict,
    record_from_dict,
    record_id,
)
from amk.core.store import CorpusProblem, CorpusQuery, CorpusStats, Store, shape_counts
from amk.core.workload import Workload

LAYOUT_VERSION = 1  # the table layout above; a database with a newer one is refused

# Fields kept in amk_records' own columns; the body holds the rest of the measurement and provenance.
_COLUMN_MEASUREMENT_FIELDS = ("verdict", "kind", "latency_us", "bound_us")
_MEASUREMENT_FIELDS = tuple(f.name for f in attrs.fields(Measurement) if f.name not in _COLUMN_MEASUREMENT_FIELDS)
_PROVENANCE_FIELDS = tuple(f.name for f in attrs.fields(Provenance)
                           if f.name not in ("timestamp", "source", "extra"))
RECORD_COLUMNS = ("r.workload_id, r.device_id, r.config_id, r.latency_us, r.bound_us, r.verdict, r.kind, r.timestamp,"
                  " r.source")
READ_COLUMNS = ("r.id, r.schema_version, r.workload_id, r.device_id, r.config_id, r.verdict, r.kind, r.latency_us,"
                " r.bound_us, r.timestamp, r.source, b.body")


def _values_getter(fields: tuple[str, ...]) -> Callable[[Any], tuple]:
    get = operator.attrgetter(*fields)
    return get if len(fields) > 1 else (lambda obj: (get(obj),))


_measurement_values = _values_getter(_MEASUREMENT_FIELDS)
_provenance_values = _values_getter(_PROVENANCE_FIELDS)
_BODY_TEMPLATE = ('{"measurement":{' + ",".join(f'"{f}":%s' for f in _MEASUREMENT_FIELDS)
                  + '},"provenance":{%s,"extra":%s}}')
_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


class RecordRow(NamedTuple):
    """One record, split into its unique-table entries (workload, device, config key) and its own columns."""

    workload: Workload
    device: Device
    config_key: str
    verdict: str
    kind: str
    latency_us: float | None
    bound_us: float | None
    timestamp: float | None
    source: str | None
    body: str


def _encode_value(value: Any) -> str:
    # Hand-written for the common scalar types: bulk appends spend most of their time here.
    kind = type(value)
    if value is None:
        return "null"
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is float:
        return float.__repr__(value)  # finite: the Measurement validators refuse NaN and infinities
    if kind is int:
        return int.__repr__(value)
    return _dumps(value)


class RowEncoder:
    """Serialises records into what their rows store as text: the config key and the body.

    What many records share (a config, a provenance) is serialised once per encoder, so one encoder
    serves every chunk of a bulk append. Shared objects are recognised by id(); each cache entry keeps
    its object alive, so an id cannot be reused while the encoder lives.
    """

    def __init__(self) -> None:
        self._config_keys: dict[int, tuple[Any, str]] = {}  # id(config) -> (config, config_key)
        self._extras: dict[int, tuple[Any, str]] = {}  # id(provenance.extra) -> (extra, its JSON)
        self._origins: dict[tuple, str] = {}  # provenance fields in the body -> their JSON

    def encode(self, records: Sequence[Record]) -> tuple[list[str], list[str]]:
        """(config keys, bodies) of ``records``, one of each per record, in order (two lists rather than a
        pair per record: bulk appends spend their time here). Raises TypeError for an item that is not a
        Record."""
        config_keys, extras, origins = self._config_keys, self._extras, self._origins
        keys: list[str] = []
        bodies: list[str] = []
        for r in records:
            if type(r) is not Record and not isinstance(r, Record):
                raise TypeError(f"a store appends Record objects, got {type(r).__name__}")
            cfg, p = r.config, r.provenance
            found = config_keys.get(id(cfg))
            if found is None:
                found = config_keys[id(cfg)] = (cfg, config_key(cfg))
            extra = extras.get(id(p.extra))
            if extra is None:
                extra = extras[id(p.extra)] = (p.extra, _dumps(p.extra))
            origin = _provenance_values(p)
            provenance = origins.get(origin)
            if provenance is None:
                provenance = origins[origin] = _dumps(dict(zip(_PROVENANCE_FIELDS, origin)))[1:-1]
            keys.append(found[1])
            bodies.append(_BODY_TEMPLATE % (*map(_encode_value, _measurement_values(r.measurement)), provenance,
                                            extra[1]))
        return keys, bodies

    def rows(self, records: Iterable[Record]) -> list[RecordRow]:
        """The rows of ``records``, in order. Raises TypeError for an item that is not a Record."""
        records = records if isinstance(records, list) else list(records)
        keys, bodies = self.encode(records)
        # _value_ is the enum's plain attribute (.value is a slower property; both are the same str).
        return [RecordRow(r.workload, r.device, key, r.measurement.verdict._value_, r.measurement.kind._value_,
                          r.measurement.latency_us, r.measurement.bound_us, r.provenance.timestamp,
                          r.provenance.source, body)
                for r, key, body in zip(records, keys, bodies)]


def record_rows(records: Iterable[Record]) -> list[RecordRow]:
    """Rows for ``records`` (one ``RowEncoder``'s); raises TypeError for an item that is not a Record."""
    return RowEncoder().rows(records)


def device_key(device: Device) -> str:
    return canonical_json(attrs.asdict(device))


def unique_key(kind: str, value: Any) -> str:
    """The key of a workload's, device's or config's unique-table row: what makes two of them one row. Not
    Python's equality, under which a shape {"x": 1} is {"x": true} and {"x": 1.0} (one row would give all
    three records the first one's shape)."""
    if kind == "workload":
        return value.key
    return device_key(value) if kind == "device" else value


_DEVICE_FIELDS = tuple(f.name for f in attrs.fields(Device))


class UniqueKeys:
    """``unique_key`` of the workloads and devices of many records, each distinct one serialised once: they are
    remembered by their fields' reprs, which tell apart what Python's equality does not (1, 1.0 and True;
    0.0 and -0.0) and cost a fraction of the canonical JSON."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[tuple, str]] = {"workload": {}, "device": {}}

    def __call__(self, kind: str, value: Any) -> str:
        if kind == "workload":
            seen = (value.kind, value.name, *((k, repr(v)) for k, v in value.shape.items()))
        elif kind == "device":
            seen = tuple(repr(getattr(value, f)) for f in _DEVICE_FIELDS)
        else:
            return value
        key = self._keys[kind].get(seen)
        if key is None:
            key = self._keys[kind][seen] = unique_key(kind, value)
        return key


def row_record_ids(records: Mapping[str, Record], identity: Callable[[Record], str]) -> dict[str, str]:
    """``append_new``'s ids -> the ``record_id`` each row is kept under (the SQL stores' unique key): the ids
    themselves when they are record ids (the store contract), else each record hashed."""
    return dict(zip(records, records)) if identity is record_id else {k: record_id(r) for k, r in records.items()}


def workload_row(workload: Workload) -> tuple[str, str, str, str]:
    """(key, kind, name, shape JSON) of a workload's unique-table row."""
    return workload.key, workload.kind, workload.name, canonical_json(workload.shape)


READABLE = "r.id NOT IN (SELECT id FROM amk_unreadable)"  # rows no full read has found unreadable


def where_clause(query: CorpusQuery | None, ph: str, *, readable_only: bool = True) -> tuple[str, list[Any]]:
    """``query`` as a WHERE clause over ``amk_records r`` with ``ph`` placeholders, and its parameters.

    ``readable_only`` leaves out the rows in ``amk_unreadable`` (what every answer but a read of rows does).
    """
    query = query or CorpusQuery()
    # Rows from a newer schema are refused (and reported by problems()), so no query counts them.
    parts, params = [f"r.schema_version <= {ph}"], [SCHEMA_VERSION]
    if readable_only:
        parts.append(READABLE)
    if query.device is not None:
        parts.append(f"r.device_id IN (SELECT id FROM amk_devices WHERE name = {ph})")
        params.append(query.device)
    for column, value in (("kind", query.workload_kind), ("name", query.workload_name)):
        if value is not None:
            parts.append(f"r.workload_id IN (SELECT id FROM amk_workloads WHERE {column} = {ph})")
            params.append(value)
    if query.workload_shape is not None:
        parts.append(f"r.workload_id IN (SELECT id FROM amk_workloads WHERE shape = {ph})")
        params.append(canonical_json(dict(query.workload_shape)))
    if query.verdict is not None:
        parts.append(f"r.verdict = {ph}")
        params.append(Verdict(query.verdict).value)
    if query.kind is not None:
        parts.append(f"r.kind = {ph}")
        params.append(MeasurementKind(query.kind).value)
    if query.since is not None:
        parts.append(f"r.timestamp >= {ph}")
        params.append(query.since)
    if query.until is not None:
        parts.append(f"r.timestamp < {ph}")
        params.append(query.until)
    return " AND ".join(parts), params


class UniqueTables:
    """The workloads, devices and configs of a database by id, read as they are needed and then kept."""

    _TABLES = (("workloads", "amk_workloads"), ("devices", "amk_devices"), ("configs", "amk_configs"))

    def __init__(self, fetch: Callable[[str, list[int] | None, int], list[tuple]]) -> None:
        # fetch(table, ids, after) -> the rows of those ids, or (ids None) every row with id > after
        self._fetch = fetch
        self.workloads: dict[int, dict[str, Any]] = {}
        self.devices: dict[int, dict[str, Any]] = {}
        self.configs: dict[int, dict[str, Any]] = {}
        self._objects: dict[str, dict[int, Any]] = {"workload": {}, "device": {}}

    def _load(self, attr: str, table: str, ids: list[int] | None) -> None:
        cache = getattr(self, attr)
        for row in self._fetch(table, ids, max(cache, default=0)):
            if table == "amk_workloads":
                rid, kind, name, shape = row
                cache[rid] = {"kind": kind, "name": name, "shape": parse_json(shape)}
            else:
                cache[row[0]] = parse_json(row[1])

    def refresh(self) -> None:
        """Read every entry added since the last read."""
        for attr, table in self._TABLES:
            self._load(attr, table, None)

    def ensure(self, workload_ids: Iterable[int] = (), device_ids: Iterable[int] = (),
               config_ids: Iterable[int] = ()) -> None:
        """Read the entries of these ids that are not here yet (a few by id, many by reading all new ones)."""
        for (attr, table), ids in zip(self._TABLES, (workload_ids, device_ids, config_ids)):
            cache = getattr(self, attr)
            missing = [int(i) for i in ids if i not in cache]
            if missing:
                self._load(attr, table, missing if len(missing) <= 500 else None)

    def workload(self, wid: int) -> Workload:
        cache = self._objects["workload"]
        if wid not in cache:
            w = self.workloads[wid]
            cache[wid] = Workload(w["kind"], w["name"], w["shape"])
        return cache[wid]

    def device(self, did: int) -> Device:
        cache = self._objects["device"]
        if did not in cache:
            cache[did] = Device(**self.devices[did])
        return cache[did]

    def record_dict(self, row: tuple) -> dict[str, Any]:
        """The record dict of a row of ``READ_COLUMNS``."""
        _, schema_version, wid, did, cid, verdict, kind, latency, bound, timestamp, source, body = row
        if body is None:
            raise ValueError("the row has no body")
        data = parse_json(body)
        if schema_version == 0 and isinstance(data, Mapping):
            # The original system's record predates amk's row layout: a row of it holds the record whole.
            return dict(data)
        w = self.workloads[wid]
        if not isinstance(data, Mapping) or not isinstance(data.get("measurement"), Mapping) \
                or not isinstance(data.get("provenance"), Mapping):
            raise ValueError("the stored body is not an object with a measurement and a provenance")
        data["measurement"].update(verdict=verdict, kind=kind, latency_us=latency, bound_us=bound)
        data["provenance"].update(timestamp=timestamp, source=source)
        data.update({"schema_version": schema_version,
                     "workload": {"kind": w["kind"], "name": w["name"], "shape": copy.deepcopy(w["shape"])},
                     "device": dict(self.devices[did]), "config": copy.deepcopy(self.configs[cid])})
        return data


def read_record(tables: UniqueTables, row: tuple, where: str) -> Record:
    """The record of a row of ``READ_COLUMNS``."""
    try:
        data = tables.record_dict(row)
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise RecordError(f"{where}: the stored row cannot be read ({exc}); restore it from a backup or delete it.") from None
    return record_from_dict(data, where=where)


def problem_from(exc: RecordError, where: str) -> CorpusProblem:
    return CorpusProblem(where, str(exc).removeprefix(where + ": "))


def columns_from_rows(rows: list[tuple], tables: UniqueTables) -> CorpusColumns:
    """Compact columns from rows of ``RECORD_COLUMNS``."""
    n = len(rows)
    if n == 0:
        return CorpusColumns.from_records([])
    wid, did, cid, lat, bound, verdict, kind, ts, source = zip(*rows)
    ids = {name: np.fromiter(col, dtype=np.int64, count=n) for name, col in (("w", wid), ("d", did), ("c", cid))}
    tables.ensure(np.unique(ids["w"]).tolist(), np.unique(ids["d"]).tolist(), np.unique(ids["c"]).tolist())
    workload_index, workload_ids = first_use_factorize(ids["w"], np.arange(int(ids["w"].max()) + 1))
    device_index, device_ids = first_use_factorize(ids["d"], np.arange(int(ids["d"].max()) + 1))
    config_index, config_ids = first_use_factorize(ids["c"], np.arange(int(ids["c"].max()) + 1))
    verdict_code = {v.value: i for i, v in enumerate(VERDICT_CODES)}
    kind_code = {k.value: i for i, k in enumerate(KIND_CODES)}

    def floats(col: tuple) -> np.ndarray:
        return np.array(col, dtype=np.float64)  # None -> NaN

    return CorpusColumns(
        workloads=[tables.workload(int(i)) for i in workload_ids],
        devices=[tables.device(int(i)) for i in device_ids],
        configs=[dict(tables.configs[int(i)]) for i in config_ids],
        workload_index=workload_index, device_index=device_index, config_index=config_index,
        latency_us=floats(lat), bound_us=floats(bound),
        verdict=np.fromiter((verdict_code[v] for v in verdict), dtype=np.int8, count=n),
        kind=np.fromiter((kind_code[k] for k in kind), dtype=np.int8, count=n),
        timestamp=floats(ts),
        source=np.array(source, dtype=object),
    )


def best_configs_sql(where: str, per_workload_ph: str) -> str:
    """The best-of query behind ``best_configs`` (see ``Store.best_configs``) over a WHERE clause.

    The ranking reads only columns of the ``amk_records_best`` index (no row lookups); the full columns
    are read for the winners alone.
    """
    return f"""
        WITH candidates AS (
            SELECT r.id, r.workload_id, r.latency_us,
                   ROW_NUMBER() OVER (PARTITION BY r.workload_id, r.config_id ORDER BY r.latency_us, r.id) AS sample_rank,
                   MIN(r.id) OVER (PARTITION BY r.workload_id) AS workload_first
            FROM amk_records r
            WHERE {where} AND r.latency_us IS NOT NULL
        ), best AS (
            SELECT id, workload_first, latency_us,
                   ROW_NUMBER() OVER (PARTITION BY workload_id ORDER BY latency_us, id) AS config_rank
            FROM candidates WHERE sample_rank = 1
        )
        SELECT {RECORD_COLUMNS} FROM best JOIN amk_records r ON r.id = best.id
        WHERE best.config_rank <= {per_workload_ph}
        ORDER BY best.workload_first, best.latency_us, best.id
    """


def stats_from_counts(by_device: list[tuple[str, int]], by_workload: list[tuple[str, str, str, int]],
                      by_kind: list[tuple[str, int]], by_verdict: list[tuple[str, int]], problems: int) -> CorpusStats:
    """CorpusStats from GROUP BY results; ``by_workload`` rows are (kind, name, shape JSON, count)."""
    workloads: dict[str, int] = {}
    shapes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for kind, name, shape, n in by_workload:
        label = f"{kind}:{name}"
        workloads[label] = workloads.get(label, 0) + n
        shapes[label][json.dumps(parse_json(shape), sort_keys=True)] += n
    total = sum(n for _, n in by_device)
    return CorpusStats(total, dict(sorted(by_device)), dict(sorted(workloads.items())), dict(sorted(by_kind)),
                       dict(sorted(by_verdict)), shape_counts(shapes), problems)


def check_meta(meta: Mapping[str, str], where: str) -> None:
    """Refuse a database written with a newer table layout than this amk knows."""
    from amk.core.errors import StoreError

    layout = int(meta.get("layout_version", LAYOUT_VERSION))
    if layout > LAYOUT_VERSION:
        raise StoreError(
            f"{where} uses table layout {layout}, written by a newer amk (this one knows up to {LAYOUT_VERSION}); "
            "upgrade amk to use it."
        )


class SqlStore(Store):
    """Reading, shared by the SQL stores: subclasses connect, append, and run SQL with ``ph`` placeholders."""

    ph: ClassVar[str] = "?"
    # How to ask for a sequential scan when a query reads a large share of the table (a device's rows):
    # one pass in id order beats an index lookup per row plus a sort.
    _scan_hint: ClassVar[str] = ""
    # How a unique table's key is matched with a parameter (postgres indexes md5(key), not the long text).
    _key_column: ClassVar[str] = "key"
    _key_param: ClassVar[str] = "?"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._tables = UniqueTables(self._fetch_unique)
        self._problems: list[CorpusProblem] = []
        # Unique-table ids this store has interned or seen committed: workload/device/config (by unique_key) ->
        # id, pairs.
        self._ids: dict[str, dict[Any, int]] = {"workload": {}, "device": {}, "config": {}, "pair": {}}
        self._unique_key = UniqueKeys()

    @abstractmethod
    def _fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Every row of one statement."""

    @abstractmethod
    def _stream(self, statement: str, params: Sequence[Any] = ()) -> Iterator[list[tuple]]:
        """The rows of one statement in batches, without holding them all in memory."""

    def _fetch_unique(self, table: str, ids: list[int] | None, after: int) -> list[tuple]:
        columns = "id, kind, name, shape" if table == "amk_workloads" else "id, key"
        if ids is None:
            return self._fetchall(f"SELECT {columns} FROM {table} WHERE id > {self.ph} ORDER BY id", (after,))
        return self._fetchall(f"SELECT {columns} FROM {table} WHERE id IN ({', '.join(map(str, ids))})")

    def _scan(self) -> Iterator[Record]:
        return self.query()

    def query(self, query: CorpusQuery | None = None) -> Iterator[Record]:
        # Every row is read, those in amk_unreadable too: one that has been restored reads again.
        where, params = where_clause(query, self.ph, readable_only=False)
        return self._read(where, params, full=query is None or query == CorpusQuery())

    def _read(self, where: str, params: list[Any], full: bool) -> Iterator[Record]:
        problems: list[CorpusProblem] = []
        unreadable: dict[int, str] = {}
        for batch in self._stream(
                f"SELECT {READ_COLUMNS} FROM amk_records r"
                f" LEFT JOIN amk_bodies b ON b.id = r.id WHERE {where} ORDER BY r.id", params):
            self._tables.ensure({row[2] for row in batch}, {row[3] for row in batch}, {row[4] for row in batch})
            for row in batch:
                where_row = f"{self.describe()}#{row[0]}"
                try:
                    yield read_record(self._tables, row, where_row)
                except RecordError as exc:
                    problem = problem_from(exc, where_row)
                    problems.append(problem)
                    if not isinstance(exc, SchemaVersionError):  # a newer schema's row is no damage
                        unreadable[int(row[0])] = problem.reason
        if full:
            self._problems = problems
            self._record_unreadable(unreadable, everything=True)
        elif unreadable:
            self._record_unreadable(unreadable, everything=False)

    def _record_unreadable(self, rows: dict[int, str], *, everything: bool) -> None:
        """Keep ``amk_unreadable`` as reads found it: ``rows`` (id -> why) added; with ``everything`` (a read of
        every row), the rows no longer in ``rows`` removed. Best effort: a store that cannot be written (a
        read-only file) still reports them through problems()."""
        try:
            held = dict(self._fetchall("SELECT id, reason FROM amk_unreadable"))
            if held == rows or (not everything and rows.items() <= held.items()):
                return
            gone = [rid for rid in held if rid not in rows] if everything else []
            added = [(rid, why) for rid, why in rows.items() if held.get(rid) != why]
            self._write_unreadable(gone, added)
        except StoreError:
            pass

    @abstractmethod
    def _write_unreadable(self, gone: list[int], added: list[tuple[int, str]]) -> None:
        """In one transaction: delete the ``gone`` ids from amk_unreadable, insert (or replace) the ``added``."""

    def count(self, query: CorpusQuery | None = None) -> int:
        where, params = where_clause(query, self.ph)
        return int(self._fetchall(f"SELECT COUNT(*) FROM amk_records r WHERE {where}", params)[0][0])

    def columns(self, query: CorpusQuery | None = None) -> CorpusColumns:
        where, params = where_clause(query, self.ph)
        selective = query is not None and (query.workload_name is not None or query.workload_shape is not None)
        hint = "" if selective else self._scan_hint
        rows = self._fetchall(f"SELECT {RECORD_COLUMNS} FROM amk_records r {hint} WHERE {where} ORDER BY r.id", params)
        return columns_from_rows(rows, self._tables)

    def workloads(self, device: str | None = None, workload_kind: str | None = None) -> list[Workload]:
        parts, params = [], []
        if device is not None:
            parts.append(f"id IN (SELECT workload_id FROM amk_device_workloads WHERE device_id IN"
                         f" (SELECT id FROM amk_devices WHERE name = {self.ph}))")
            params.append(device)
        if workload_kind is not None:
            parts.append(f"kind = {self.ph}")
            params.append(workload_kind)
        ids = [row[0] for row in self._fetchall(
            f"SELECT id FROM amk_workloads WHERE {' AND '.join(parts) or 'TRUE'}", params)]
        self._tables.ensure(ids)
        return sorted((self._tables.workload(i) for i in ids), key=lambda w: w.key)

    def best_configs(self, device: str, *, workload_kind: str | None = None,
                     workloads: Iterable[Workload] | None = None, per_workload: int = 3,
                     kinds: Iterable[MeasurementKind] | None = (MeasurementKind.MEASURED,)) -> CorpusColumns:
        if per_workload < 1:
            raise ValueError(f"per_workload={per_workload!r} must be >= 1")
        ph = self.ph
        where, params = where_clause(CorpusQuery(device=device, workload_kind=workload_kind, verdict=Verdict.PASS), ph)
        if kinds is not None:
            values = [MeasurementKind(k).value for k in kinds]
            where += f" AND r.kind IN ({', '.join([ph] * len(values)) or 'NULL'})"
            params += values
        if workloads is not None:
            keys = [w.key for w in workloads]
            found = self._fetchall(
                f"SELECT id FROM amk_workloads WHERE key IN ({', '.join([ph] * len(keys))})", keys) if keys else []
            where += f" AND r.workload_id IN ({', '.join(str(int(row[0])) for row in found) or 'NULL'})"
        rows = self._fetchall(best_configs_sql(where, ph), [*params, per_workload])
        return columns_from_rows(rows, self._tables)

    def stats(self) -> CorpusStats:
        current = f"r.schema_version <= {SCHEMA_VERSION} AND {READABLE}"
        by_device = self._fetchall(
            "SELECT d.name, COUNT(*) FROM amk_records r JOIN amk_devices d ON d.id = r.device_id"
            f" WHERE {current} GROUP BY d.name")
        by_workload = self._fetchall(
            "SELECT w.kind, w.name, w.shape, g.n FROM (SELECT workload_id, COUNT(*) AS n, MIN(id) AS first"
            f" FROM amk_records r WHERE {current} GROUP BY workload_id) g"
            " JOIN amk_workloads w ON w.id = g.workload_id ORDER BY g.first")
        by_kind = self._fetchall(f"SELECT r.kind, COUNT(*) FROM amk_records r WHERE {current} GROUP BY r.kind")
        by_verdict = self._fetchall(f"SELECT r.verdict, COUNT(*) FROM amk_records r WHERE {current} GROUP BY r.verdict")
        return stats_from_counts(by_device, by_workload, by_kind, by_verdict, len(self.problems()))

    def problems(self) -> list[CorpusProblem]:
        """Rows the last full read could not read, plus every row from a newer schema (found by SQL)."""
        newer = [CorpusProblem(f"{self.describe()}#{rid}",
                               f"schema_version {version} was written by a newer amk (this one reads up to "
                               f"{SCHEMA_VERSION}); upgrade amk to read it.")
                 for rid, version in self._fetchall(
                     f"SELECT id, schema_version FROM amk_records WHERE schema_version > {self.ph} ORDER BY id",
                     (SCHEMA_VERSION,))]
        damaged = [CorpusProblem(f"{self.describe()}#{rid}", reason) for rid, reason in self._fetchall(
            "SELECT id, reason FROM amk_unreadable ORDER BY id")]
        seen = {p.where for p in self._problems}
        out = self._problems + [p for p in damaged if p.where not in seen]
        seen |= {p.where for p in damaged}
        return out + [p for p in newer if p.where not in seen]

    def _ids_by_key(self, table: str, keys: Iterable[str]) -> dict[str, int]:
        """key -> id of those ``keys`` that a unique table holds."""
        keys = sorted(set(keys))
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            found.update((key, int(rid)) for rid, key in self._fetchall(
                f"SELECT id, key FROM {table} WHERE {self._key_column} IN ({', '.join([self._key_param] * len(part))})",
                part))
        return found

    def _keyed_ids(self, record_ids: Sequence[str]) -> set[str]:
        """Those of ``record_ids`` that a row holds as its ``record_id`` key (readable or not)."""
        found: set[str] = set()
        for start in range(0, len(record_ids), 500):
            part = list(record_ids[start:start + 500])
            found.update(row[0] for row in self._fetchall(
                f"SELECT record_id FROM amk_records WHERE record_id IN ({', '.join([self.ph] * len(part))})", part))
        return found

    def known_ids(self, records: Mapping[str, Record], *,
                  identity: Callable[[Record], str] | None = None) -> set[str]:
        """Matched by content through the indexes (see ``Store.known_ids``), never by hashing every row.

        Only rows of a record's device and workload (the head of ``amk_records_best``) with its config,
        verdict, kind and latency (all in that index) are read and hashed, and every row of an older
        schema (its columns may differ from those of the record it upgrades to; ``amk corpus migrate``
        rewrites them). Nothing is cached, so a row another process committed before the call is seen.
        """
        if not records:
            return set()
        from amk.core.records import record_id

        identity = identity or record_id
        ph = self.ph
        keys = [(r.workload.key, device_key(r.device), config_key(r.config), r.measurement.verdict.value,
                 r.measurement.kind.value, r.measurement.latency_us) for r in records.values()]
        workload_ids = self._ids_by_key("amk_workloads", (k[0] for k in keys))
        device_ids = self._ids_by_key("amk_devices", (k[1] for k in keys))
        config_ids = self._ids_by_key("amk_configs", (k[2] for k in keys))
        wanted = sorted({(device_ids[d], workload_ids[w], verdict, kind, latency, config_ids[c])
                         for w, d, c, verdict, kind, latency in keys
                         if w in workload_ids and d in device_ids and c in config_ids},
                        key=lambda k: (*k[:4], k[4] is None, k[4] or 0.0, k[5]))
        candidates = [int(row[0]) for row in self._fetchall(
            f"SELECT id FROM amk_records WHERE schema_version < {ph}", (SCHEMA_VERSION,))]
        # Each key is one seek in amk_records_best (device, workload, verdict, kind, latency, config); the
        # casts give the VALUES columns their types in both databases (a NULL alone has none in postgres).
        row_values = (f"(CAST({ph} AS BIGINT), CAST({ph} AS BIGINT), CAST({ph} AS TEXT), CAST({ph} AS TEXT),"
                      f" CAST({ph} AS DOUBLE PRECISION), CAST({ph} AS BIGINT))")
        for start in range(0, len(wanted), 150):
            part = wanted[start:start + 150]
            candidates += [int(row[0]) for row in self._fetchall(
                f"WITH k (d, w, v, kd, lat, c) AS (VALUES {', '.join([row_values] * len(part))})"
                " SELECT r.id FROM k JOIN amk_records r ON r.device_id = k.d AND r.workload_id = k.w"
                " AND r.verdict = k.v AND r.kind = k.kd AND (r.latency_us = k.lat OR (r.latency_us IS NULL"
                f" AND k.lat IS NULL)) AND r.config_id = k.c WHERE r.schema_version = {ph}",
                [value for key in part for value in key] + [SCHEMA_VERSION])]
        found: set[str] = set()
        for start in range(0, len(candidates), 1000):
            part = ", ".join(map(str, candidates[start:start + 1000]))
            for batch in self._stream(f"SELECT {READ_COLUMNS} FROM amk_records r JOIN amk_bodies b ON b.id = r.id"
                                      f" WHERE r.id IN ({part})"):
                self._tables.ensure({row[2] for row in batch}, {row[3] for row in batch}, {row[4] for row in batch})
                for row in batch:
                    try:
                        rid = identity(read_record(self._tables, row, f"{self.describe()}#{row[0]}"))
                    except RecordError:
                        continue  # unreadable rows are reported by problems(), and hold no known record
                    if rid in records:
                        found.add(rid)
        return found

    def migrate(self) -> str:
        """Rewrite rows of older schema versions in the current one, in one transaction (after a backup where
        the store makes one); rows that cannot be upgraded are left as they are and counted."""
        old = self._fetchall(f"SELECT COUNT(*) FROM amk_records WHERE schema_version < {self.ph}", (SCHEMA_VERSION,))
        if not old[0][0]:
            return f"{self.describe()}: every record is already in schema {SCHEMA_VERSION}, nothing to migrate"
        backup_note = self._migration_backup()
        rows = self._rows_to_migrate()
        upgraded = [(rid, record) for rid, record in rows if record is not None]
        interned = self._rewrite([rid for rid, _ in upgraded], record_rows(record for _, record in upgraded))
        for kind, new in interned.items():  # only now, after the commit, as appends do
            self._ids[kind].update(new)
        failed = len(rows) - len(upgraded)
        note = f"; {failed} rows could not be upgraded and were left as they were" if failed else ""
        return f"{self.describe()}: {len(upgraded)} records rewritten in schema {SCHEMA_VERSION}{backup_note}{note}"

    def _migration_backup(self) -> str:
        """Copy the store before ``migrate`` rewrites it; returns what the report says of the copy."""
        return ""

    @abstractmethod
    def _rewrite(self, row_ids: list[int], rows: list[RecordRow]) -> dict[str, dict[Any, int]]:
        """In one transaction: each row id rewritten as its row (``_rewrite_rows``); returns the unique-table
        ids it interned, by kind, for the caller to remember once committed."""

    def _rewrite_rows(self, conn: Any, row_ids: Iterable[int], rows: Iterable[RecordRow],
                      ids_of: Callable[[RecordRow], tuple[int, int, int]]) -> None:
        """On ``conn``, in the caller's transaction: rewrite each row id in place as its ``RecordRow``, in the
        current schema; ``ids_of`` gives a row's (workload, device, config) ids."""
        ph = self.ph
        update_record = (f"UPDATE amk_records SET schema_version = {ph}, workload_id = {ph}, device_id = {ph},"
                         f" config_id = {ph}, verdict = {ph}, kind = {ph}, latency_us = {ph}, bound_us = {ph},"
                         f" timestamp = {ph}, source = {ph} WHERE id = {ph}")
        update_body = f"UPDATE amk_bodies SET body = {ph} WHERE id = {ph}"
        for rid, r in zip(row_ids, rows):
            conn.execute(update_record, (SCHEMA_VERSION, *ids_of(r), r.verdict, r.kind, r.latency_us, r.bound_us,
                                         r.timestamp, r.source, rid))
            conn.execute(update_body, (r.body, rid))

    def _rows_to_migrate(self) -> list[tuple[int, Record | None]]:
        """(id, upgraded record or None when it cannot be upgraded) for each row of an older schema."""
        self._tables.refresh()
        out: list[tuple[int, Record | None]] = []
        for batch in self._stream(
                f"SELECT {READ_COLUMNS} FROM amk_records r"
                f" JOIN amk_bodies b ON b.id = r.id WHERE r.schema_version < {self.ph} ORDER BY r.id",
                (SCHEMA_VERSION,)):
            for row in batch:
                try:
                    out.append((row[0], read_record(self._tables, row, f"{self.describe()}#{row[0]}")))
                except RecordError:
                    out.append((row[0], None))
        return out
