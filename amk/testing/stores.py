"""The store contract: append and read back every record unchanged, and answer every question
(query, count, columns, workloads, best configs, known ids, stats) as the generic implementation of
:class:`~amk.core.store.Store` answers it over the same records.

The expected answers come from a reference store that keeps the records in a list and overrides nothing,
so a store that answers faster (SQL, a columns cache) is held to the generic semantics.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np

from amk.core.columns import config_key
from amk.core.records import MeasurementKind, Record, Verdict, content_id, record_id, record_to_json
from amk.core.store import CorpusQuery, CorpusStats, Store
from amk.core.workload import Workload
from amk.testing._base import Check, CheckReport, NotApplicable, bind, expect, run_checks
from amk.testing.samples import column_rows, sample_queries, sample_record, sample_records

StoreFactory = Callable[[Path], Store]


def reopen_with_same_options(store: Store) -> Store:
    """A second handle on the same stored records: ``type(store)(store.options)`` (the default ``reopen``)."""
    return type(store)(store.options)


class _ReferenceStore(Store):
    """Records in a list, every question answered by :class:`Store`'s generic implementation."""

    name: ClassVar[str] = "amk.testing reference"

    def __init__(self, records: Iterable[Record]) -> None:
        super().__init__()
        self._records = list(records)

    def append(self, records: Iterable[Record]) -> int:
        batch = list(records)
        self._records.extend(batch)
        return len(batch)

    def _scan(self) -> Iterator[Record]:
        return iter(list(self._records))


@attrs.frozen
class StoreSubject:
    """What the store checks run on: a factory of fresh, empty stores and the optional hooks.

    ``make_store(directory)`` returns a new, empty store that may keep its files under ``directory`` (a
    fresh temporary directory per check, removed afterwards). ``reopen(store)`` returns a second handle
    on the same records (None: the checks that need one are skipped). ``spoil_entry(store)`` makes one
    stored entry unreadable behind the store's back (None: a store that cannot hold an unreadable entry).
    """

    make_store: StoreFactory | None
    reopen: Callable[[Store], Store] | None = reopen_with_same_options
    spoil_entry: Callable[[Store], None] | None = None

    @contextlib.contextmanager
    def fresh(self) -> Iterator[Store]:
        """A new, empty store in a temporary directory, closed (and the directory removed) afterwards."""
        if self.make_store is None:
            raise TypeError("no make_store: pass one to store_checks(...) or to the check itself, check(make_store=...)")
        with tempfile.TemporaryDirectory(prefix="amk-testing-") as tmp:
            store = self.make_store(Path(tmp))
            expect(isinstance(store, Store), f"make_store must return a Store, got {type(store).__name__}")
            with store:
                yield store

    @contextlib.contextmanager
    def reopened(self, store: Store) -> Iterator[Store]:
        """A second handle on ``store``'s records, closed afterwards; NotApplicable without ``reopen``."""
        if self.reopen is None:
            raise NotApplicable("no reopen was given, so the store cannot be opened a second time")
        with self.reopen(store) as other:
            yield other

    @contextlib.contextmanager
    def filled(self) -> Iterator[Store]:
        """A fresh store holding :func:`sample_records`, appended in two batches."""
        records = RECORDS
        with self.fresh() as store:
            store.append(records[:60])
            store.append(records[60:])
            yield store


RECORDS = sample_records()
REFERENCE = _ReferenceStore(RECORDS)
QUERIES = sample_queries(RECORDS)


def _jsons(records: Iterable[Record]) -> list[str]:
    return [record_to_json(r) for r in records]


def _q(query: CorpusQuery) -> str:
    """A query as its set fields only, for a failure message: CorpusQuery(device='h100')."""
    fields = ", ".join(f"{k}={v!r}" for k, v in attrs.asdict(query, recurse=False).items() if v is not None)
    return f"CorpusQuery({fields})"


def _row_diff(got: list, expected: list) -> str:
    """Where two lists of rows (or record JSONs) first differ, for a failure message."""
    if len(got) != len(expected):
        return f"got {len(got)}"
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    if first is None:
        return "they are equal"
    return f"#{first} is {str(got[first])[:300]}, expected {str(expected[first])[:300]}"


def append_returns_the_count_and_an_empty_batch_appends_nothing(subject: StoreSubject) -> None:
    """append returns how many records it appended, and an empty batch appends nothing."""
    with subject.fresh() as store:
        appended = store.append(RECORDS[:7])
        expect(appended == 7, f"append of 7 records should return 7, got {appended!r}")
        appended = store.append([])
        expect(appended == 0, f"append of no records should return 0, got {appended!r}")
        expect(store.count() == 7, f"after appending 7 records count() should be 7, got {store.count()}")


def records_come_back_identical_and_in_append_order(subject: StoreSubject) -> None:
    """query() returns every appended record unchanged, in append order, and problems() is empty."""
    with subject.filled() as store:
        got, expected = _jsons(store.query()), _jsons(RECORDS)
        expect(got == expected, f"query() should return the {len(expected)} appended records in append order: "
                                f"{_row_diff(got, expected)}")
        expect(store.problems() == [], f"problems() should be empty for a store of readable records, "
                                       f"got {store.problems()[:3]}")


def query_and_count_match_the_generic_filter(subject: StoreSubject) -> None:
    """query(q) returns exactly the records q matches, in append order, and count(q) their number."""
    with subject.filled() as store:
        for query in QUERIES:
            expected = _jsons(REFERENCE.query(query))
            got = _jsons(store.query(query))
            expect(got == expected, f"query({_q(query)}) should return the {len(expected)} matching records in "
                                    f"append order: {_row_diff(got, expected)}")
            count = store.count(query)
            expect(count == len(expected), f"count({_q(query)}) should be {len(expected)}, got {count}")


def columns_hold_the_rows_of_columns_built_from_the_records(subject: StoreSubject) -> None:
    """columns(q) holds the same rows, in the same order, as CorpusColumns built from the matching records."""
    with subject.filled() as store:
        for query in QUERIES:
            got, expected = column_rows(store.columns(query)), column_rows(REFERENCE.columns(query))
            expect(got == expected, f"columns({_q(query)}) should hold the {len(expected)} rows of "
                                    f"CorpusColumns.from_records of the matching records: {_row_diff(got, expected)}")


def columns_intern_each_workload_device_and_config_once(subject: StoreSubject) -> None:
    """columns() lists each distinct workload, device and config once, with int32 indexes and float64 latencies."""
    with subject.filled() as store:
        cols = store.columns()
        workloads = [w.key for w in cols.workloads]
        expect(len(set(workloads)) == len(workloads), "columns().workloads should hold each workload once, "
                                                      f"got {len(workloads)} for {len(set(workloads))} distinct")
        devices = {r.device for r in RECORDS}
        expect(len(cols.devices) == len(set(cols.devices)) == len(devices),
               f"columns().devices should hold each of the {len(devices)} devices once, got {len(cols.devices)}")
        keys = [config_key(c) for c in cols.configs]
        expect(len(set(keys)) == len(keys), "columns().configs should hold each config once, "
                                            f"got {len(keys)} for {len(set(keys))} distinct")
        for column in ("workload_index", "device_index", "config_index"):
            dtype = getattr(cols, column).dtype
            expect(dtype == np.int32, f"columns().{column} should be int32, got {dtype}")
        expect(cols.latency_us.dtype == np.float64, f"columns().latency_us should be float64, got {cols.latency_us.dtype}")


def best_configs_match_the_generic_best_of(subject: StoreSubject) -> None:
    """best_configs(device, per_workload=k) equals the generic best-of over the same records."""
    with subject.filled() as store:
        for device in ("h100", "l4", "mystery-gpu", "absent"):
            for per_workload in (1, 3):
                for kinds in ((MeasurementKind.MEASURED,), None):
                    got = store.best_configs(device, per_workload=per_workload, kinds=kinds)
                    expected = REFERENCE.best_configs(device, per_workload=per_workload, kinds=kinds)
                    call = f"best_configs({device!r}, per_workload={per_workload}, kinds={kinds})"
                    expect(column_rows(got) == column_rows(expected),
                           f"{call} should hold the {len(expected)} rows of the generic best-of, got {len(got)} "
                           "rows or different ones")
                    expect(got.workloads == expected.workloads and got.configs == expected.configs,
                           f"{call} should list only the workloads and configs of its rows, in row order")


def best_configs_keep_only_the_fastest_pass_sample_of_each_config(subject: StoreSubject) -> None:
    """best_configs has one row per (workload, config): its fastest PASS sample."""
    with subject.filled() as store:
        rows = column_rows(store.best_configs("h100", per_workload=100, kinds=None))
        pairs = [(w, str(c)) for w, _, c, *_ in rows]
        expect(len(pairs) == len(set(pairs)), "best_configs should give each (workload, config) one row")
        pass_code = list(Verdict).index(Verdict.PASS)
        expect({r[5] for r in rows} <= {pass_code}, "best_configs should hold only PASS rows")
        passing = [r for r in RECORDS if r.device.name == "h100" and r.measurement.verdict is Verdict.PASS]
        for w, _, cfg, latency, *_ in rows:
            fastest = min(r.measurement.latency_us for r in passing if r.workload.key == w and r.config == cfg)
            expect(latency == fastest, f"best_configs should keep the fastest sample ({fastest} us) of {w} {cfg}, "
                                       f"got {latency}")


def best_configs_are_limited_to_the_given_workloads_and_kinds(subject: StoreSubject) -> None:
    """best_configs(workloads=...) answers for those workloads only, of the measured kind by default."""
    with subject.filled() as store:
        wanted = store.workloads("h100", "decode")[:1]
        best = store.best_configs("h100", workloads=wanted, per_workload=2)
        expect(best.workloads == wanted and len(best) == 2,
               f"best_configs('h100', workloads=[{wanted[0].key if wanted else None}], per_workload=2) should give "
               f"2 rows of that workload, got {len(best)} rows of {[w.key for w in best.workloads]}")
        measured = list(MeasurementKind).index(MeasurementKind.MEASURED)
        expect(set(best.kind.tolist()) <= {measured}, "best_configs should keep only measured rows by default")
        none = store.best_configs("h100", workloads=[], per_workload=2)
        expect(len(none) == 0, f"best_configs(workloads=[]) should be empty, got {len(none)} rows")


def workloads_list_the_distinct_workloads_of_a_device(subject: StoreSubject) -> None:
    """workloads(device, kind) lists the distinct workloads with records there, sorted by key."""
    with subject.filled() as store:
        for device, kind in (("h100", None), ("a100", "decode"), (None, "kernel_tuner"), ("absent", None)):
            got = [w.key for w in store.workloads(device, kind)]
            expected = [w.key for w in REFERENCE.workloads(device, kind)]
            expect(got == expected, f"workloads({device!r}, {kind!r}) should be the {len(expected)} distinct "
                                    f"workloads sorted by key, got {len(got)}: {got[:3]}")


def stats_match_the_generic_counts(subject: StoreSubject) -> None:
    """stats() counts the records by device, workload, kind and verdict, as CorpusStats.of counts them."""
    with subject.filled() as store:
        got, expected = store.stats(), CorpusStats.of(RECORDS, problems=0)
        expect(got == expected, f"stats() should be {expected}, got {got}")


def known_ids_are_exactly_the_ids_of_stored_records(subject: StoreSubject) -> None:
    """known_ids returns the ids of the given records that the store holds, and nothing for an empty mapping."""
    with subject.fresh() as store:
        store.append(sample_record(i) for i in range(6))
        held = {record_id(r): r for r in (sample_record(i) for i in range(0, 6, 2))}
        absent = {record_id(r): r for r in (sample_record(i) for i in range(6, 9))}
        got = store.known_ids(held | absent)
        expect(got == set(held), f"known_ids should be the {len(held)} ids of stored records, got {len(got)} "
                                 f"({len(got & set(absent))} of records never appended)")
        expect(store.known_ids({}) == set(), "known_ids({}) should be an empty set")


def a_record_that_differs_in_one_field_is_not_known(subject: StoreSubject) -> None:
    """known_ids does not claim a record that differs from a stored one in its latency or timestamp."""
    with subject.fresh() as store:
        stored = sample_record(1)
        store.append([stored])
        slower = attrs.evolve(stored, measurement=attrs.evolve(stored.measurement, latency_us=999.0))
        later = attrs.evolve(stored, provenance=attrs.evolve(stored.provenance, timestamp=2e9))
        got = store.known_ids({record_id(r): r for r in (slower, later, stored)})
        expect(got == {record_id(stored)}, f"known_ids should hold only the stored record's id, got {len(got)} ids")


def repeated_measurements_are_kept_as_samples(subject: StoreSubject) -> None:
    """Appending the same record twice keeps two samples; best_configs still gives the config one row."""
    with subject.fresh() as store:
        store.append([RECORDS[0]])
        store.append([RECORDS[0]])
        expect(store.count() == 2, f"a record appended twice should be counted twice, got {store.count()}")
        best = store.best_configs(RECORDS[0].device.name, kinds=None)
        expect(len(best) == 1, f"best_configs should give the repeated config one row, got {len(best)}")


def an_empty_store_answers_every_question(subject: StoreSubject) -> None:
    """A new store answers query, count, columns, best_configs, workloads, known_ids and stats with nothing."""
    with subject.fresh() as store:
        expect(list(store.query()) == [], "query() of an empty store should be empty")
        expect(store.count() == 0, f"count() of an empty store should be 0, got {store.count()}")
        expect(len(store.columns()) == 0, "columns() of an empty store should have no rows")
        expect(len(store.best_configs("h100")) == 0, "best_configs('h100') of an empty store should have no rows")
        expect(store.workloads() == [], "workloads() of an empty store should be []")
        record = sample_record(0)
        expect(store.known_ids({record_id(record): record}) == set(), "known_ids of an empty store should be empty")
        expect(store.stats() == CorpusStats.of([]), f"stats() of an empty store should be all zero, got {store.stats()}")
        expect(store.problems() == [], "problems() of an empty store should be []")


def records_streamed_from_a_generator_keep_their_own_configs(subject: StoreSubject) -> None:
    """append reads a generator once, and each record keeps its own config (no mix-up of reused objects)."""
    with subject.fresh() as store:
        appended = store.append(sample_record(i) for i in range(300))
        expect(appended == 300, f"append of a generator of 300 records should return 300, got {appended!r}")
        got = [r.config for r in store.query()]
        expected = [sample_record(i).config for i in range(300)]
        expect(got == expected, "records appended from a generator should come back with their own configs, in order")


def shapes_equal_in_python_but_not_in_json_come_back_as_written(subject: StoreSubject) -> None:
    """Workloads whose shapes Python calls equal ({"x": 1}, {"x": 1.0}, {"x": true}; 0.0 and -0.0) are
    distinct records: each comes back with its own shape, in query() and in stats()."""
    base = sample_record(0)
    shapes = [{"x": 1}, {"x": 1.0}, {"x": True}, {"x": 0.0}, {"x": -0.0}]
    records = [attrs.evolve(base, workload=Workload("kernel_tuner", "odd", shape)) for shape in shapes]
    with subject.fresh() as store:
        store.append(records[:2])
        store.append(records[2:])  # a second append: what the first interned must not take these in
        got, expected = _jsons(store.query()), _jsons(records)
        expect(got == expected, f"each record should keep its own shape: {_row_diff(got, expected)}")
        expect(store.stats() == CorpusStats.of(records), f"stats() should count each shape apart, got "
                                                          f"{store.stats().shapes}")


def records_survive_closing_the_store(subject: StoreSubject) -> None:
    """What was appended is there, unchanged, when the store is opened again after close()."""
    with subject.fresh() as store:
        store.append(RECORDS[:10])
        store.close()
        with subject.reopened(store) as again:
            got = _jsons(again.query())
            expect(got == _jsons(RECORDS[:10]), f"a store opened again after close() should hold the 10 records "
                                                f"appended before, got {len(got)}")


def a_second_handle_sees_appends_made_through_the_first(subject: StoreSubject) -> None:
    """A store opened twice: appends through one are seen by the other at its next read."""
    with subject.fresh() as store, subject.reopened(store) as other:
        expect(other.count() == 0, f"a second handle on an empty store should count 0, got {other.count()}")
        store.append(RECORDS[:3])
        expect(other.count() == 3, f"the second handle should see the 3 records appended through the first, "
                                   f"got {other.count()}")
        expect(len(other.columns()) == 3, "the second handle's columns() should hold the 3 new records, "
                                          f"got {len(other.columns())} rows")


def append_new_appends_only_the_records_the_store_does_not_hold(subject: StoreSubject) -> None:
    """``append_new`` skips what the store holds (by record id), appends the rest in order, and returns how
    many it appended; a second call with the same records appends nothing."""
    with subject.fresh() as store:
        store.append(RECORDS[:3])
        batch = {record_id(r): r for r in RECORDS[:6]}
        added = store.append_new(batch)
        expect(added == 3, f"append_new of 6 records, 3 of them held, should append 3, returned {added}")
        got = _jsons(store.query())
        expect(got == _jsons(RECORDS[:6]), f"the store should hold the 6 records in order once each, got {len(got)}")
        expect(store.append_new(batch) == 0 and store.count() == 6,
               "append_new of records the store holds should append nothing")
        # By content (what `amk corpus import` asks): the same records read from elsewhere are held too.
        moved = [attrs.evolve(r, provenance=attrs.evolve(r.provenance, source="elsewhere.json#1")) for r in RECORDS[:7]]
        added = store.append_new({content_id(r): r for r in moved}, identity=content_id)
        expect(added == 1 and store.count() == 7,
               f"append_new(identity=content_id) of 7 records whose content 6 held records have should append 1, "
               f"returned {added}")


def a_second_handle_is_the_same_store(subject: StoreSubject) -> None:
    """``identity()`` is the same for two handles of one store (when the store can tell it: not None)."""
    with subject.fresh() as store, subject.reopened(store) as other:
        store.append(RECORDS[:1])
        first = store.identity()
        if first is None:
            raise NotApplicable("the store cannot tell its identity (identity() is None)")
        expect(first == other.identity(), f"two handles of one store should have one identity, got {first!r} "
                                          f"and {other.identity()!r}")


def an_append_made_while_a_read_is_in_progress_is_kept(subject: StoreSubject) -> None:
    """A record appended while a query is half-read, then abandoned, is stored."""
    with subject.fresh() as store:
        store.append(RECORDS[:50])
        reading = store.query()
        next(reading)
        store.append(RECORDS[50:51])
        reading.close()
        with subject.reopened(store) as other:
            expect(other.count() == 51, f"the store should hold 51 records, got {other.count()}")


def an_unreadable_entry_is_reported_by_problems(subject: StoreSubject) -> None:
    """An entry spoiled behind the store's back is reported once by problems() and stats(); the others read,
    and count, columns and stats agree with what query() reads."""
    if subject.spoil_entry is None:
        raise NotApplicable("no spoil_entry was given (the store cannot hold an unreadable entry)")
    with subject.fresh() as store:
        store.append(RECORDS[:4])
        subject.spoil_entry(store)
        reader = subject.reopened(store) if subject.reopen is not None else contextlib.nullcontext(store)
        with reader as other:
            got = _jsons(other.query())
            expected = _jsons(RECORDS[:4])
            expect(len(got) == 3 and all(r in expected for r in got) and got == sorted(got, key=expected.index),
                   f"with one of 4 entries spoiled, query() should return the other 3 in append order, got {len(got)}")
            problems = other.problems()
            expect(len(problems) == 1, f"problems() should report the one spoiled entry, got {problems}")
            expect(problems[0].where and problems[0].reason,
                   f"the problem should say where the entry is and why it is unreadable, got {problems[0]}")
            stats = other.stats()
            expect((stats.total, stats.problems) == (3, 1),
                   f"stats() should count the 3 readable records and 1 problem, got {stats.total} and {stats.problems}")
            expect(other.count() == 3 and len(other.columns()) == 3,
                   f"count() and columns() should hold the 3 records query() reads, got {other.count()} and "
                   f"{len(other.columns())} rows")


STORE_CHECKS: tuple[Callable[[StoreSubject], None], ...] = (
    append_returns_the_count_and_an_empty_batch_appends_nothing,
    records_come_back_identical_and_in_append_order,
    query_and_count_match_the_generic_filter,
    columns_hold_the_rows_of_columns_built_from_the_records,
    columns_intern_each_workload_device_and_config_once,
    best_configs_match_the_generic_best_of,
    best_configs_keep_only_the_fastest_pass_sample_of_each_config,
    best_configs_are_limited_to_the_given_workloads_and_kinds,
    workloads_list_the_distinct_workloads_of_a_device,
    stats_match_the_generic_counts,
    known_ids_are_exactly_the_ids_of_stored_records,
    a_record_that_differs_in_one_field_is_not_known,
    repeated_measurements_are_kept_as_samples,
    an_empty_store_answers_every_question,
    records_streamed_from_a_generator_keep_their_own_configs,
    shapes_equal_in_python_but_not_in_json_come_back_as_written,
    records_survive_closing_the_store,
    a_second_handle_sees_appends_made_through_the_first,
    append_new_appends_only_the_records_the_store_does_not_hold,
    a_second_handle_is_the_same_store,
    an_append_made_while_a_read_is_in_progress_is_kept,
    an_unreadable_entry_is_reported_by_problems,
)


def store_checks(make_store: StoreFactory | None = None, *,
                 reopen: Callable[[Store], Store] | None = reopen_with_same_options,
                 spoil_entry: Callable[[Store], None] | None = None, label: str = "") -> list[Check]:
    """Every store check, bound to ``make_store`` (see :class:`StoreSubject` for the arguments).

    ``make_store`` may be left out and given when a check runs, ``check(make_store=...)``.
    """
    return bind("store", STORE_CHECKS, StoreSubject(make_store, reopen, spoil_entry), label)


def check_store(make_store: StoreFactory, *, reopen: Callable[[Store], Store] | None = reopen_with_same_options,
                spoil_entry: Callable[[Store], None] | None = None) -> CheckReport:
    """Run every store check on fresh stores from ``make_store``; AssertionError names each failed check."""
    return run_checks(store_checks(make_store, reopen=reopen, spoil_entry=spoil_entry))


