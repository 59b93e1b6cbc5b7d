"""The jsonl store's fast first read (amk/stores/jsonl_fast.py) gives exactly what the slow path gives.

Every file is read twice through the columns cache's full read, once with the fast path and once with
every line through ``record_from_dict``; the columns (every column, the unique tables, sources), the
lines' offsets and the problems (file:line, message) must be the same.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import column_rows, make_record

from amk.core.columns import CorpusColumns
from amk.core.records import record_to_dict, record_to_json
from amk.stores.jsonl import JsonlStore
from amk.stores.jsonl_columns import cache_path, cached_columns
from amk.stores.jsonl_fast import ColumnsRow, FastRows

COLUMNS = ("workload_index", "device_index", "config_index", "latency_us", "bound_us", "verdict", "kind",
           "timestamp")
V0_RECORD = {"model": "llama-7b(4096h/32L)", "gpu": "NVIDIA H100 80GB HBM3", "correctness": "PASS",
             "latency_us": 12.5, "bound_us": 0.0, "pct_of_roofline": 80.0,
             "schedule": {"tiling": {"gemv": {"N_tile": 64}}, "pipelining_depth": 2},
             "notes": "kind=measured", "ts": 1.7e9}


def read(path, *, fast: bool):
    cache_path(path).unlink(missing_ok=True)
    store = JsonlStore(JsonlStore.Options(path=str(path)))
    with path.open("rb") as f:
        return cached_columns(path, f, store._read_lines, fast=fast)


def assert_same_read(path) -> None:
    slow, fast = read(path, fast=False), read(path, fast=True)
    for name in COLUMNS:
        a, b = getattr(slow.columns, name), getattr(fast.columns, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert slow.columns.source.tolist() == fast.columns.source.tolist()
    assert slow.columns.workloads == fast.columns.workloads
    assert [w.key for w in slow.columns.workloads] == [w.key for w in fast.columns.workloads]
    assert slow.columns.devices == fast.columns.devices
    # Device and config values with their types (1 == 1.0 == True would hide a difference).
    assert [repr(d) for d in slow.columns.devices] == [repr(d) for d in fast.columns.devices]
    assert json.dumps(slow.columns.configs) == json.dumps(fast.columns.configs)
    assert np.array_equal(slow.offsets, fast.offsets)
    assert slow.problems == fast.problems


def canonical(data) -> str:
    """A line as amk writes it (sorted keys, no spaces), NaN allowed so that malformed values can be written."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def write(path, lines: list[str], *, torn: str | None = None) -> None:
    path.write_bytes(("".join(line + "\n" for line in lines) + (torn or "")).encode())


# -- generated files --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)

# Paths into a record dict that a mutation may replace, drop or add beside.
PATHS = [(), ("schema_version",), ("config",), ("config", "pipelining_depth"), ("workload",), ("workload", "kind"),
         ("workload", "name"), ("workload", "shape"), ("workload", "shape", "hidden"), ("device",),
         ("device", "name"), ("device", "arch"), ("device", "sm_count"), ("device", "mem_bandwidth_gbps"),
         ("device", "memory_gb"), ("measurement",), ("measurement", "verdict"), ("measurement", "kind"),
         ("measurement", "latency_us"), ("measurement", "spread_us"), ("measurement", "samples"),
         ("measurement", "bound_us"), ("measurement", "reason"), ("provenance",), ("provenance", "backend"),
         ("provenance", "timestamp"), ("provenance", "source"), ("provenance", "extra"), ("provenance", "notes")]
SPECIAL_VALUES = [-1.0, 0.0, -0.0, 0, -1, 1, 1.0, True, False, 2**64 + 1, 2**53 + 1, 2**63 + 12345, 123456789012345678901234567891,
                  -(2**63) - 1, 1e308, float("nan"),
                           float("inf"), "1.5", "PASS", "pass", "measured", "bogus", "h100", "", " ", [], {},
                           [1, 2], "\u00e9", "\ud800", None]
SPECIAL = st.sampled_from(SPECIAL_VALUES)


@st.composite
def mutated_line(draw) -> str:
    data = record_to_dict(make_record(draw(st.integers(0, 40))))
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    path = draw(st.sampled_from(PATHS))
    value = draw(SPECIAL | json_values)
    if path == ():
        return canonical(value) if action == "replace" else canonical({**data, "extra_key": value})
    holder = data
    for part in path[:-1]:
        holder = holder[part]
    if not isinstance(holder, dict):
        return canonical(data)
    if action == "replace":
        holder[path[-1]] = value
    elif action == "drop":
        holder.pop(path[-1], None)
    else:
        target = holder.get(path[-1])
        if isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=5))] = value
        else:
            holder["unexpected"] = value
    return canonical(data)


@st.composite
def any_line(draw) -> str:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "mutated", "v0", "text", "spaced"]))
    if kind == "valid":
        return record_to_json(make_record(draw(st.integers(0, 60))))
    if kind == "mutated":
        return draw(mutated_line())
    if kind == "v0":
        raw = copy.deepcopy(V0_RECORD)
        if draw(st.booleans()):
            raw[draw(st.sampled_from(sorted(raw)))] = draw(SPECIAL)
        return canonical(raw)
    if kind == "spaced":  # a valid record, not in amk's canonical form
        return json.dumps(record_to_dict(make_record(draw(st.integers(0, 60)))))
    line = draw(st.text(max_size=30))  # anything: bad JSON, blank, a number, ...
    return line.replace("\n", " ").replace("\r", " ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(any_line(), max_size=25), torn=st.none() | st.sampled_from(['{"config":{', "x", "{}"]))
def test_the_fast_read_gives_the_same_columns_and_problems_as_the_slow_one(tmp_path, lines, torn):
    path = tmp_path / "c.jsonl"
    write(path, lines, torn=torn)
    assert_same_read(path)


def test_every_odd_value_in_every_field_reads_the_same_fast_and_slow(tmp_path):
    lines = []
    for i in (0, 1, 3):  # a PASS, a FAIL (no latency), a kernel_tuner workload
        for path in PATHS:
            for value in SPECIAL_VALUES:
                data = record_to_dict(make_record(i))
                if path == ():
                    lines.append(canonical(value))
                    continue
                holder = data
                for part in path[:-1]:
                    holder = holder[part]
                holder[path[-1]] = value
                lines.append(canonical(data))
            lines.append(_drop_line(i, path))
    path = tmp_path / "c.jsonl"
    path.write_bytes("".join(x + "\n" for x in lines).encode("utf-8", "surrogatepass"))
    assert_same_read(path)
    assert len(read(path, fast=True).columns) > 3 * len(PATHS)  # many lines are records, not all problems


def _drop_line(i: int, path: tuple) -> str:
    data = record_to_dict(make_record(i))
    holder = data
    for part in path[:-1]:
        holder = holder[part]
    if path:
        holder.pop(path[-1], None)
    return canonical(data)


def test_a_store_without_the_columns_cache_reads_the_same_columns_and_problems(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [record_to_json(make_record(i)) for i in range(12)] + list(FALLBACKS.values())
    path.write_bytes("".join(x + "\n" for x in lines).encode("utf-8", "surrogatepass"))
    store = JsonlStore(JsonlStore.Options(path=str(path), columns_cache=False))
    cols = store.columns()
    problems = store.problems()
    slow = read(path, fast=False)
    assert column_rows(cols) == column_rows(slow.columns)
    assert cols.source.tolist() == slow.columns.source.tolist() and problems == slow.problems
    assert column_rows(cols) == column_rows(CorpusColumns.from_records(store.query()))


def test_a_file_of_records_amk_wrote_is_read_by_the_fast_path_alone(tmp_path):
    path = tmp_path / "c.jsonl"
    store = JsonlStore(JsonlStore.Options(path=str(path)))
    store.append([make_record(i) for i in range(40)])
    with path.open("rb") as f:
        items = [item for _, item, _ in store._read_lines(f, rows=True)]
    assert len(items) == 40 and all(type(item) is ColumnsRow for item in items)
    assert_same_read(path)


def test_without_orjson_the_fast_path_parses_with_json_and_reads_the_same(tmp_path, monkeypatch):
    import amk.stores.jsonl_fast as jsonl_fast

    monkeypatch.setattr(jsonl_fast, "_loads", json.loads)  # orjson is optional (amk[fast])
    path = tmp_path / "c.jsonl"
    lines = [record_to_json(make_record(i)) for i in range(12)] + list(FALLBACKS.values())
    path.write_bytes("".join(x + "\n" for x in lines).encode("utf-8", "surrogatepass"))
    assert_same_read(path)
    assert sum(FastRows().row(x.encode() + b"\n") is not None for x in lines[:12]) == 12


# -- each reason the fast path leaves a line to record_from_dict ------------------------------------

def _valid() -> dict:
    return record_to_dict(make_record(1))


def _set(path: tuple, value) -> str:
    data = _valid()
    holder = data
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return canonical(data)


def _drop(path: tuple) -> str:
    data = _valid()
    holder = data
    for part in path[:-1]:
        holder = holder[part]
    del holder[path[-1]]
    return canonical(data)


FALLBACKS = {
    "older schema (the original system's record)": canonical(V0_RECORD),
    "schema_version 0 written out": _set(("schema_version",), 0),
    "a newer schema": _set(("schema_version",), 2),
    "schema_version as a float": _set(("schema_version",), 1.0),
    "not JSON": '{"config":{}, oops}',
    "not an object": "[1,2,3]",
    "not in canonical form (spaces)": json.dumps(_valid()),
    "keys not sorted": json.dumps(_valid(), separators=(",", ":")),
    "a missing top-level key": _drop(("provenance",)),
    "an extra top-level key": canonical({**_valid(), "zzz": 1}),
    "a missing measurement key": _drop(("measurement", "reason")),
    "an extra measurement key": _set(("measurement", "note"), "x"),
    "an extra workload key": _set(("workload", "dtype"), "bf16"),
    "an extra device key": _set(("device", "vendor"), "nvidia"),
    "latency as a string": _set(("measurement", "latency_us"), "105.5"),
    "latency negative": _set(("measurement", "latency_us"), -1.0),
    "latency zero": _set(("measurement", "latency_us"), 0),
    "latency NaN": _set(("measurement", "latency_us"), math.nan),
    "latency infinite": _set(("measurement", "latency_us"), math.inf),
    "latency a bool": _set(("measurement", "latency_us"), True),
    "a PASS without latency": _set(("measurement", "latency_us"), None),
    "spread negative": _set(("measurement", "spread_us"), -0.5),
    "samples as a float": _set(("measurement", "samples"), 10.0),
    "samples zero": _set(("measurement", "samples"), 0),
    "bound negative": _set(("measurement", "bound_us"), -3.0),
    "reason a number": _set(("measurement", "reason"), 3),
    "an unknown verdict": _set(("measurement", "verdict"), "MAYBE"),
    "a verdict in lower case": _set(("measurement", "verdict"), "pass"),
    "an unknown kind": _set(("measurement", "kind"), "guessed"),
    "timestamp as a string": _set(("provenance", "timestamp"), "2025-01-01"),
    "timestamp a bool": _set(("provenance", "timestamp"), False),
    "backend a number": _set(("provenance", "backend"), 7),
    "source a number": _set(("provenance", "source"), 7),
    "extra a list": _set(("provenance", "extra"), [1]),
    "config a list": _set(("config",), [1]),
    "config not canonical JSON (a big int orjson reads as a float)": _set(("config", "x"), 2**64 + 1),
    "a duplicate config key": canonical(_valid()).replace(',"measurement":', ',"config":{"other":1},"measurement":'),
    "a duplicate config key spelled with a \\u escape": canonical(_valid()).replace(
        ',"measurement":', ',"con\\u0066ig":{"other":1},"measurement":'),
    "a \\u escape in the line": _set(("provenance", "notes"), "caf\u00e9"),
    "workload name empty": _set(("workload", "name"), " "),
    "workload shape with a nested object": _set(("workload", "shape", "hidden"), {"a": 1}),
    "device name a number": _set(("device", "name"), 100),
    "device sm_count a float": _set(("device", "sm_count"), 132.0),
    "device sm_count negative": _set(("device", "sm_count"), -1),
    "device memory a string": _set(("device", "memory_gb"), "80"),
    "device memory a bool": _set(("device", "memory_gb"), True),
    "a lone surrogate (orjson refuses it, json reads it)": _set(("provenance", "notes"), "\ud800"),
    "a BOM": "\ufeff" + canonical(_valid()),
}


@pytest.mark.parametrize("line", list(FALLBACKS.values()), ids=list(FALLBACKS))
def test_a_line_the_fast_path_is_not_certain_of_goes_the_slow_way(tmp_path, line):
    rows = FastRows()
    valid = canonical(_valid())  # seen first: its config and workload are then known texts
    assert rows.row((valid + "\n").encode()) is not None
    assert rows.row((line + "\n").encode("utf-8", "surrogatepass")) is None
    path = tmp_path / "c.jsonl"
    lines = [record_to_json(make_record(0)), valid, line, record_to_json(make_record(2))]
    path.write_bytes("".join(x + "\n" for x in lines).encode("utf-8", "surrogatepass"))
    assert_same_read(path)


def test_a_torn_last_line_goes_the_slow_way_and_is_reported_the_same(tmp_path):
    path = tmp_path / "c.jsonl"
    whole = record_to_json(make_record(3))
    write(path, [record_to_json(make_record(0))], torn=whole)
    assert FastRows().row(whole.encode()) is None  # no newline
    assert_same_read(path)
    assert "incomplete last line" in read(path, fast=True).problems[-1].reason
