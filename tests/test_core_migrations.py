import json

import pytest

from amk.core import migrations
from amk.core.errors import RecordError
from amk.core.records import MeasurementKind, Verdict, record_from_dict, record_id, record_to_dict
from amk.decode.schedule import ScheduleConfig
from amk.decode.workload import model_shape


@pytest.fixture(scope="module")
def upstream(upstream_corpus):
    lines = [json.loads(line) for line in upstream_corpus.read_text().splitlines() if line.strip()]
    return [(raw, record_from_dict(raw, where=f"{upstream_corpus}:{i}")) for i, raw in enumerate(lines, 1)]


def test_the_chain_of_upgrades_is_contiguous():
    assert sorted(migrations.UPGRADES) == list(range(migrations.SCHEMA_VERSION))


def test_all_44_upstream_records_migrate(upstream):
    assert len(upstream) == 44


def test_nothing_of_an_upstream_record_is_lost(upstream):
    for raw, record in upstream:
        extra = record.provenance.extra
        assert record.workload.name == raw["model"]
        assert extra["model_device_string"] == raw["gpu"]
        assert record.measurement.verdict.value == raw["correctness"]
        assert record.measurement.latency_us == raw["latency_us"]
        assert record.measurement.bound_us == (raw["bound_us"] or None)
        assert extra["upstream_pct_of_roofline"] == raw["pct_of_roofline"]
        assert record.provenance.notes == raw["notes"]
        assert record.provenance.timestamp == (raw["ts"] or None)
        for key in ("regime", "ir_version", "abi_version"):
            assert extra[key] == raw[key]
        schedule_back = {**record.config, **extra.get("schedule_extras", {})}
        assert schedule_back == raw["schedule"]


def test_an_original_record_with_an_iso_time_migrates_keeping_the_time_as_written():
    raw = {"model": "x(4096h/2L)", "gpu": "h100", "correctness": "PASS", "latency_us": 10.0, "bound_us": 0.0,
           "schedule": {"threads_per_block": 256}, "notes": "kind=measured-gpu", "ts": "2024-03-01T12:00:00Z"}
    record = record_from_dict(raw)  # was: "$.provenance.timestamp is not a number"
    assert record.provenance.timestamp is None and record.provenance.extra["ts"] == "2024-03-01T12:00:00Z"


def test_shapes_come_from_the_model_name_when_the_record_has_no_shape(upstream):
    by_name = {raw["model"]: record for raw, record in upstream}
    one_b = model_shape(by_name["llama-1B-shape(2048h/16L/128k-vocab)"].workload)
    assert (one_b.hidden, one_b.n_layers, one_b.vocab) == (2048, 16, 128000)
    assert model_shape(by_name["small(4L/2048h)"].workload).n_layers == 4
    assert model_shape(by_name["toy(1L)"].workload).hidden == 0  # unknown stays unknown, not guessed
    assert by_name["toy(1L)"].provenance.extra["shape_source"] == "model_name"


def test_a_shape_inside_the_schedule_wins_over_the_name():
    raw = {"model": "x(4096h/2L)", "gpu": "h100", "correctness": "PASS", "latency_us": 10.0, "bound_us": 0.0,
           "schedule": {"hidden": 1024, "n_layers": 3, "threads_per_block": 256}, "notes": "kind=measured-gpu"}
    record = record_from_dict(raw)
    assert model_shape(record.workload).hidden == 1024
    assert record.provenance.extra["shape_source"] == "schedule"
    assert "hidden" not in record.config


def test_the_latency_kind_is_read_from_the_notes(upstream):
    kinds = {(raw["notes"], record.measurement.kind) for raw, record in upstream}
    for notes, kind in kinds:
        expected = MeasurementKind.PREDICTED if ("predicted" in notes or "cost-model" in notes) else MeasurementKind.MEASURED
        assert kind is expected, notes


def test_notes_without_a_kind_are_assumed_predicted_and_say_so():
    raw = {"model": "m", "gpu": "h100", "correctness": "PASS", "latency_us": 5.0, "bound_us": 1.0,
           "schedule": {}, "notes": "kept"}
    record = record_from_dict(raw)
    assert record.measurement.kind is MeasurementKind.PREDICTED
    assert "assumed predicted" in record.provenance.extra["kind_source"]


def test_unknown_bound_becomes_none_not_zero(upstream):
    unknown = [record for raw, record in upstream if raw["bound_us"] == 0.0]
    assert unknown and all(r.measurement.bound_us is None for r in unknown)


def test_the_device_is_resolved_with_its_specs(upstream):
    devices = {record.device.name: record.device for _, record in upstream}
    assert set(devices) == {"rtx5090", "a100", "h100"}
    assert devices["h100"].mem_bandwidth_gbps == 3350.0


def test_migrated_configs_are_legal_schedules(upstream):
    for _, record in upstream:
        ScheduleConfig.from_dict(record.config)


def test_migrated_records_reread_identically(upstream):
    for _, record in upstream:
        assert record_from_dict(record_to_dict(record)) == record


def test_an_upstream_record_missing_its_model_is_a_clear_error():
    with pytest.raises(RecordError, match="c.jsonl:2: it has no schema_version and is not in the original"):
        record_from_dict({"gpu": "h100", "correctness": "PASS", "schedule": {}}, where="c.jsonl:2")


def test_an_upstream_verdict_outside_the_known_ones_is_refused():
    raw = {"model": "m", "gpu": "h100", "correctness": "MAYBE", "latency_us": 1.0, "bound_us": 0.0,
           "schedule": {}, "notes": ""}
    with pytest.raises(RecordError, match="'MAYBE' is not a valid Verdict"):
        record_from_dict(raw)


def test_verdicts_other_than_pass_survive():
    raw = {"model": "m", "gpu": "h100", "correctness": "FAIL", "latency_us": None, "bound_us": 0.0,
           "schedule": {}, "notes": "kind=measured-gpu"}
    assert record_from_dict(raw).measurement.verdict is Verdict.FAIL


def test_editing_the_device_registry_never_changes_what_an_original_record_upgrades_to(monkeypatch):
    raw = {"model": "m(2L/1024h)", "gpu": "NVIDIA A100-SXM4-40GB", "correctness": "PASS", "latency_us": 9.0,
           "bound_us": 3.0, "schedule": {"threads_per_block": 256}, "notes": "kind=measured-gpu", "ts": 1.7e9}
    before = record_from_dict(raw)
    from amk.core import devices

    renamed = {**devices.KNOWN_DEVICES, "a100": devices.Device("a100", "sm_80", 108, 2039.0, 166_912, 80.0)}
    monkeypatch.setattr(devices, "KNOWN_DEVICES", renamed)
    monkeypatch.setattr(devices, "normalize_device_name", lambda name: "a100-sxm4-40gb")
    after = record_from_dict(raw)
    assert after == before
    assert record_id(after) == record_id(before)
    assert (after.device.name, after.device.mem_bandwidth_gbps, after.device.memory_gb) == ("a100", 1555.0, 40.0)
