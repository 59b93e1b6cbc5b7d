"""Kernel Tuner export: import -> export -> import gives the same records."""

from __future__ import annotations

import io
import json

import attrs
import pytest

from amk.core.errors import ExportError
from amk.formats.kernel_tuner import kernel_tuner_cache, read_kernel_tuner, write_kernel_tuner
from tests.tune_helpers import write_cache


def _records(path, **kwargs):
    items = list(read_kernel_tuner(path, **kwargs))
    assert all(i.problem is None for i in items)
    return [i.record for i in items if i.record is not None]


def _without_source(record):
    return attrs.evolve(record, provenance=attrs.evolve(record.provenance, source=None))


def _round_trip(records, tmp_path, name="exported.json", **kwargs):
    out = tmp_path / name
    with out.open("w") as f:
        write_kernel_tuner(records, f)
    return _records(out, **kwargs)


def test_import_export_import_gives_the_same_records(tmp_path):
    original = _records(write_cache(tmp_path / "a.json", device_name="NVIDIA RTX A4000"))
    again = _round_trip(original, tmp_path)
    assert [_without_source(r) for r in again] == [_without_source(r) for r in original]


def _header_device(record, name):
    extra = {**record.provenance.extra, "header": {**record.provenance.extra["header"], "device_name": name}}
    return attrs.evolve(record, provenance=attrs.evolve(record.provenance, source=None, extra=extra))


def test_an_integer_problem_size_and_a_given_device_survive_the_round_trip(tmp_path):
    original = _records(write_cache(tmp_path / "b.json.gz", device_name="", problem_size=1000), device="a6000")
    again = _round_trip(original, tmp_path)
    assert again[0].workload.shape == {"problem_size": 1000}
    assert again[0].device.name == "a6000"
    # The export names the device the file's header left empty; nothing else changes.
    assert [_header_device(r, "a6000") for r in again] == [_header_device(r, "a6000") for r in original]


def test_kernel_tuner_reads_an_exported_cache_back_in_simulation_mode(tmp_path):
    kernel_tuner = pytest.importorskip("kernel_tuner", reason="needs Kernel Tuner: pip install 'amk[kernel-tuner]'")
    original = _records(write_cache(tmp_path / "a.json", device_name="NVIDIA RTX A4000", problem_size=1000))
    out = tmp_path / "exported.json"
    with out.open("w") as f:
        write_kernel_tuner(original, f)
    results, _env = kernel_tuner.tune_kernel(
        "toy_kernel", "__global__ void toy_kernel() {}", 1000, [],
        {"block_size_x": [16, 32, 64, 128], "tile_size_x": [1, 2, 3]},
        cache=str(out), simulation_mode=True, strategy="brute_force", verbose=False, quiet=True)
    timed = {(r["block_size_x"], r["tile_size_x"]): r["time"] for r in results if isinstance(r["time"], float)}
    assert len(results) == 12 and len(timed) == 11
    assert min(timed, key=timed.get) == (64, 2)


def test_failures_are_written_as_kernel_tuner_markers(tmp_path):
    original = _records(write_cache(tmp_path / "c.json", device_name="NVIDIA RTX A4000"))
    data = kernel_tuner_cache(original)
    assert data["cache"]["128,3"]["time"] == "RuntimeFailedConfig"
    assert data["tune_params"] == {"block_size_x": [16, 32, 64, 128], "tile_size_x": [1, 2, 3]}


def test_records_of_two_devices_are_refused_with_how_to_filter(tmp_path):
    a = _records(write_cache(tmp_path / "a.json", device_name="NVIDIA RTX A4000"))
    b = _records(write_cache(tmp_path / "b.json", device_name="NVIDIA RTX A6000"))
    with pytest.raises(ExportError, match="--device"):
        write_kernel_tuner(a + b, io.StringIO())


def test_records_measured_by_amk_export_with_their_latency_in_milliseconds(tmp_path):
    from amk.core.devices import resolve_device
    from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
    from amk.core.workload import Workload

    record = Record(workload=Workload("kernel_tuner", "k", {"problem_size": [8]}), device=resolve_device("h100"),
                    config={"bx": 32}, provenance=Provenance(backend="cuda", timestamp=1700000000.25),
                    measurement=Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=250.0))
    entry = kernel_tuner_cache([record])["cache"]["32"]
    assert entry["time"] == pytest.approx(0.25)
    assert entry["timestamp"] == "2023-11-14 22:13:20.250000+00:00"


def test_a_real_cache_round_trips(shared_data, tmp_path):
    original = _records(shared_data / "kernel_tuner" / "convolution" / "A6000.json.gz")
    again = _round_trip(original, tmp_path)
    assert len(again) == len(original) == 4362
    assert [_without_source(r) for r in again] == [_without_source(r) for r in original]
    header = json.loads((tmp_path / "exported.json").read_text())
    assert header["device_name"] == "NVIDIA RTX A6000" and header["problem_size"] == [4096, 4096]


def test_corpus_export_writes_a_kernel_tuner_cache_that_imports_back(run_amk, tmp_path):
    # tile_size_x first: the store sorts config keys, the export must keep Kernel Tuner's order.
    cache = write_cache(tmp_path / "a.json", device_name="NVIDIA RTX A4000", problem_size=1000, tile_first=True)
    assert run_amk("corpus", "import", str(cache)).returncode == 0
    out = run_amk("corpus", "export", "--format", "kernel-tuner", "--device", "a4000", "-o", str(tmp_path / "out.json"))
    assert out.returncode == 0, out.stderr
    again = _records(tmp_path / "out.json")
    assert [_without_source(r) for r in again] == [_without_source(r) for r in _records(cache)]
    exported = json.loads((tmp_path / "out.json").read_text())
    assert exported["tune_params_keys"] == ["tile_size_x", "block_size_x"]
    assert list(exported["cache"]) == list(json.loads(cache.read_text())["cache"])


def test_records_spanning_many_kernels_devices_and_sizes_name_each_difference_and_how_many_more(tmp_path):
    records = []
    for i in range(7):
        cache = write_cache(tmp_path / f"{i}.json", device_name=["NVIDIA RTX A4000", "NVIDIA RTX A6000"][i % 2],
                            kernel=f"k{i}", problem_size=(1024 * (i + 1), 64))
        records += _records(cache)
    with pytest.raises(ExportError) as refused:
        write_kernel_tuner(records, io.StringIO())
    text = str(refused.value)
    assert "7 kernels (kernel_tuner:k0, kernel_tuner:k1, kernel_tuner:k2, kernel_tuner:k3, kernel_tuner:k4, ... " \
        "(2 more)): choose one with --workload-name; 2 devices (" in text
    assert "7 problem sizes ([1024, 64]; [2048, 64]; [3072, 64]; [4096, 64]; [5120, 64]; ... (2 more)): " in text


def _measured(config, verdict, latency_us=None, reason=None, backend="cuda"):
    from amk.core.devices import resolve_device
    from amk.core.records import Measurement, MeasurementKind, Provenance, Record
    from amk.core.workload import Workload

    return Record(workload=Workload("kernel_tuner", "k", {"problem_size": [8]}), device=resolve_device("h100"),
                  config=config, provenance=Provenance(backend=backend),
                  measurement=Measurement(verdict=verdict, kind=MeasurementKind.MEASURED, latency_us=latency_us,
                                          reason=reason))


def test_a_config_measured_several_times_is_one_entry_its_fastest_pass_and_the_rest_are_counted(tmp_path):
    from amk.core.errors import LeftOutWarning
    from amk.core.records import Verdict

    records = [_measured({"bx": 32}, Verdict.PASS, 300.0), _measured({"bx": 32}, Verdict.PASS, 250.0),
               _measured({"bx": 32}, Verdict.PASS, 400.0), _measured({"bx": 64}, Verdict.PASS, 100.0),
               _measured({"bx": 64}, Verdict.FAIL, reason="wrong output")]
    with pytest.warns(LeftOutWarning, match=r"3 record\(s\) left out of the Kernel Tuner cache: it holds one entry "
                                            r"per config and 2 config\(s\) have several records"):
        cache = kernel_tuner_cache(records)["cache"]
    assert cache["32"]["time"] == pytest.approx(0.25) and cache["64"]["time"] == pytest.approx(0.1)


def test_every_failure_verdict_but_timeout_round_trips_and_a_timeout_is_said(tmp_path):
    from amk.core.errors import LeftOutWarning
    from amk.core.records import Verdict

    records = [_measured({"bx": 1}, Verdict.FAIL, reason="wrong output"), _measured({"bx": 2}, Verdict.CRASH),
               _measured({"bx": 3}, Verdict.REJECTED), _measured({"bx": 4}, Verdict.TIMEOUT)]
    with pytest.warns(LeftOutWarning, match=r"1 TIMEOUT record\(s\) written as RuntimeFailedConfig"):
        again = _round_trip(records, tmp_path)
    assert [r.measurement.verdict for r in again] == [Verdict.FAIL, Verdict.CRASH, Verdict.REJECTED, Verdict.CRASH]


def test_another_formats_header_is_not_written_as_the_caches(tmp_path):
    from amk.core.records import Verdict

    record = _measured({"bx": 1}, Verdict.PASS, 10.0, backend="t4")
    record = attrs.evolve(record, provenance=attrs.evolve(record.provenance, extra={"header": {
        "schema_version": "1.0.0", "metadata": {"timeunit": "ms"}, "device_name": "NVIDIA H100 80GB HBM3"}}))
    data = kernel_tuner_cache([record])
    assert "schema_version" not in data and "metadata" not in data  # T4's schema version is no cache schema's
    assert data["device_name"] == "NVIDIA H100 80GB HBM3"
