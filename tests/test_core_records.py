import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amk.core.devices import Device
from amk.core.errors import RecordError, SchemaVersionError
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import (
    Measurement,
    MeasurementKind,
    Provenance,
    Record,
    Verdict,
    record_from_dict,
    record_id,
    record_to_dict,
    record_to_json,
)
from amk.core.workload import Workload

def text(**kwargs):
    """Strings a record may hold: any Unicode but NUL (amk.core.inputs)."""
    return st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), **kwargs)


names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Cc", "Zs")), min_size=1,
               max_size=12)  # no control or space characters: a name of only those is refused (str.strip)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9),
                         st.floats(allow_nan=False, allow_infinity=False), text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(text(max_size=6), inner, max_size=3)), max_leaves=8)
positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
shape_values = st.one_of(st.integers(0, 10**6), text(min_size=1, max_size=5),
                         st.lists(st.integers(1, 10**5), min_size=1, max_size=3))


@st.composite
def records(draw):
    verdict = draw(st.sampled_from(Verdict))
    latency = draw(positive) if verdict is Verdict.PASS else draw(st.none() | positive)
    return Record(
        workload=Workload(draw(names), draw(names), draw(st.dictionaries(names, shape_values, max_size=4))),
        device=Device(draw(names), draw(st.none() | names), draw(st.none() | st.integers(1, 500)),
                      draw(st.none() | positive), draw(st.none() | st.integers(1, 300_000)), draw(st.none() | positive)),
        config=draw(st.dictionaries(names, json_values, max_size=5)),
        measurement=Measurement(verdict=verdict, kind=draw(st.sampled_from(MeasurementKind)), latency_us=latency,
                                spread_us=draw(st.none() | st.floats(0, 1e6)), samples=draw(st.none() | st.integers(1, 1000)),
                                bound_us=draw(st.none() | positive), reason=draw(st.none() | text(max_size=10))),
        provenance=Provenance(backend=draw(names), backend_version=draw(text(max_size=5)),
                              timestamp=draw(st.none() | st.floats(0, 4e9)), notes=draw(text(max_size=20)),
                              source=draw(st.none() | text(max_size=10)),
                              extra=draw(st.dictionaries(text(max_size=6), json_values, max_size=3))),
    )


@settings(max_examples=150, deadline=None)
@given(records())
def test_structure_unstructure_structure_is_lossless(record):
    as_dict = record_to_dict(record)
    again = record_from_dict(json.loads(json.dumps(as_dict)))
    assert again == record
    assert record_to_dict(again) == as_dict
    assert record_id(again) == record_id(record)


def _valid() -> dict:
    return record_to_dict(Record(
        workload=Workload("kernel_tuner", "k", {"problem_size": [64]}), device=Device("a100"), config={"bx": 32},
        measurement=Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=10.0),
        provenance=Provenance(backend="test"),
    ))


def test_records_are_written_in_the_current_schema():
    assert json.loads(record_to_json(record_from_dict(_valid())))["schema_version"] == SCHEMA_VERSION


def test_a_record_from_a_newer_schema_is_refused_with_an_upgrade_message():
    raw = _valid() | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(SchemaVersionError, match="newer amk.*upgrade amk"):
        record_from_dict(raw, where="corpus.jsonl:9")


def test_errors_name_where_the_record_came_from_and_the_bad_fields():
    raw = _valid()
    raw["measurement"]["verdict"] = "MAYBE"
    raw["device"]["sm_count"] = -2
    with pytest.raises(RecordError) as info:
        record_from_dict(raw, where="corpus.jsonl:3")
    message = str(info.value)
    assert message.startswith("corpus.jsonl:3: ")
    assert "$.measurement.verdict" in message and "$.device" in message


def test_unknown_fields_are_refused_not_dropped():
    with pytest.raises(RecordError, match=r"extra fields found \(colour\)"):
        record_from_dict(_valid() | {"colour": "red"})


def test_a_pass_without_latency_is_refused():
    raw = _valid()
    raw["measurement"]["latency_us"] = None
    with pytest.raises(RecordError, match="PASS measurement needs latency_us"):
        record_from_dict(raw)


def test_a_non_object_is_refused():
    with pytest.raises(RecordError, match="must be a JSON object"):
        record_from_dict([1, 2], where="f:1")


def test_a_dict_in_no_known_format_is_refused():
    with pytest.raises(RecordError, match="no schema_version"):
        record_from_dict({"latency": 3})


def test_records_are_immutable():
    record = record_from_dict(_valid())
    with pytest.raises(AttributeError):
        record.config = {}  # type: ignore[misc]
