"""Hostile records for the fault-injection tests and bench/reliability.py: a valid record's JSON line with one
value replaced by something an attacker or a broken tool would write.

``hostile_lines()`` is a hypothesis strategy of JSON text lines (no newline inside): huge integers (past 64
bits, past Python's 4,300-digit limit), deep nesting (past amk's limit, past Python's recursion limit),
lone surrogates, NUL and other control characters, wrong types (``"12"`` as a latency, ``true`` as a
count, ``10.7`` as an integer), NaN and Infinity, oversized strings, broken JSON. The text is built by
hand where ``json.dumps`` would refuse to write it.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from store_helpers import make_record

from amk.core.records import record_to_dict

PLACEHOLDER = "\u2063HOSTILE\u2063"

# Paths into a record dict where a hostile value goes.
PATHS = (
    ("config", "tiling"), ("config", "new_knob"), ("measurement", "latency_us"), ("measurement", "samples"),
    ("measurement", "spread_us"), ("measurement", "reason"), ("provenance", "timestamp"), ("provenance", "notes"),
    ("provenance", "extra", "x"), ("provenance", "backend"), ("workload", "name"), ("workload", "shape", "hidden"),
    ("device", "name"), ("device", "sm_count"), ("schema_version",), ("workload",), ("config",),
)


def _text(value: Any) -> str:
    return json.dumps(value)


hostile_values = st.one_of(
    st.integers(min_value=2**63, max_value=10**40).map(str),  # past 64 bits
    st.integers(min_value=4301, max_value=20000).map(lambda n: "9" * n),  # past Python's digit limit
    st.integers(min_value=33, max_value=200).map(lambda d: "[" * d + "]" * d),  # past amk's nesting limit
    st.integers(min_value=1100, max_value=50000).map(lambda d: "[" * d + "]" * d),  # past the recursion limit
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\u0000"', '"x\\u0000y"']),  # lone surrogates, NUL
    st.text(st.characters(max_codepoint=0x9f, categories=("Cc",)), min_size=1, max_size=6).map(_text),  # controls
    st.sampled_from(['"\\u202e\\u200b"', '"\\u001b[2J"']),  # text that reorders or clears a terminal
    st.sampled_from(['"12"', "true", "false", "10.7", "[]", "{}", "null", '"PASS"', "-5", "0"]),  # wrong types
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]),
    st.integers(min_value=1 << 20, max_value=3 << 20).map(lambda n: '"' + "x" * n + '"'),  # oversized
)


@st.composite
def hostile_lines(draw) -> str:
    """One JSON line: a valid record with one value replaced by a hostile one (or broken JSON)."""
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from(['{"config": ', "{", "[1, 2", "\ufeff{}", '{"a": 1} trailing', '"\\x"']))
    data = record_to_dict(make_record(draw(st.integers(0, 40))))
    path = draw(st.sampled_from(PATHS))
    holder = data
    for key in path[:-1]:
        holder = holder.setdefault(key, {}) if isinstance(holder, dict) else holder
    holder[path[-1]] = PLACEHOLDER
    value = draw(hostile_values)
    return json.dumps(data).replace(json.dumps(PLACEHOLDER), value)
