"""T4 results: the six ../shared/data/t4 files import to the same configs, verdicts and latencies as their
Kernel Tuner twins; the writers' known variants read. (Exports: tests/test_formats_t4_export.py.)"""

from __future__ import annotations

import functools
import gzip
import json
import math
from pathlib import Path

import pytest

from amk.core.records import Record, Verdict
from amk.formats import ImportOptions, read_file

TWINS = [(kernel, device) for kernel in ("convolution", "dedispersion") for device in ("A100", "A4000", "A6000")]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@functools.cache
def _records(path: Path, **options) -> tuple[list[Record], list]:
    items = list(read_file(path, options=ImportOptions(**options)))
    return [i.record for i in items if i.record], [i.problem for i in items if i.problem]


def t4_records(kernel: str, device: str) -> list[Record]:
    path = SHARED / "t4" / kernel / f"{device}_T4.json.gz"
    if not path.is_file():
        pytest.skip(f"needs the T4 data in {path.parent} (../shared/data beside the checkout), which is absent")
    records, problems = _records(path)
    assert problems == []
    return records


def by_config(records: list[Record]) -> dict[str, Record]:
    return {json.dumps(r.config, sort_keys=True): r for r in records}


@pytest.mark.slow
@pytest.mark.parametrize(("kernel", "device"), TWINS)
def test_a_t4_file_imports_as_its_kernel_tuner_twin(kernel, device):
    t4 = by_config(t4_records(kernel, device))
    twin, problems = _records(SHARED / "kernel_tuner" / kernel / f"{device}.json.gz")
    assert problems == []
    twin = by_config(twin)
    assert t4.keys() == twin.keys()
    for key, ours in t4.items():
        theirs = twin[key]
        assert (ours.workload, ours.device, ours.measurement.verdict) == \
            (theirs.workload, theirs.device, theirs.measurement.verdict), key
        if ours.measurement.verdict is Verdict.PASS:
            assert math.isclose(ours.measurement.latency_us, theirs.measurement.latency_us, rel_tol=1e-9), key
            assert ours.measurement.samples == theirs.measurement.samples
        else:
            assert ours.measurement.reason == theirs.measurement.reason, key
        assert ours.provenance.timestamp == theirs.provenance.timestamp


def _t4_file(tmp_path: Path, results: list[dict], metadata: dict | None = None) -> Path:
    path = tmp_path / "GPU_T4.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"schema_version": "1.0.0", "metadata": metadata or {}, "results": results}, f)
    return path


def _result(config: dict, *, runtimes=None, invalidity="correct", correctness=1, value=None, unit="", times_key=None):
    times = {"compilation_time" if times_key else "compilation": 10.0}
    if runtimes is not None:
        times["runtimes"] = runtimes
    return {"configuration": config, "times": times, "invalidity": invalidity, "correctness": correctness,
            "measurements": [{"name": "time", "value": value, "unit": unit}], "objectives": ["time"]}


def test_the_t4_writers_variants_read(tmp_path):
    results = [
        _result({"x": 1}, runtimes=[2.0, 2.0, 2.0]),
        _result({"x": 2}, runtimes=[], value=3.0, unit="ms", times_key="compilation_time"),
        _result({"x": 3}, value="RuntimeFailedConfig"),  # an older converter: the marker with invalidity correct
        _result({"x": 4}, invalidity="compile", correctness=0, value=""),
        _result({"x": 5}, runtimes=[1.0], correctness=0),
        _result({"x": 6}, value=1500.0, unit="us"),
    ]
    path = _t4_file(tmp_path, results, {"timeunit": "miliseconds"})
    items = list(read_file(path, options=ImportOptions(kernel="k", problem_size=[8])))
    got = {r.config["x"]: r.measurement for r in (i.record for i in items if i.record)}
    assert not [i for i in items if i.problem]
    assert got[1].latency_us == 2000.0 and got[2].latency_us == 3000.0 and got[6].latency_us == 1500.0
    assert (got[3].verdict, got[3].reason) == (Verdict.CRASH, "RuntimeFailedConfig")
    assert (got[4].verdict, got[4].reason) == (Verdict.FAIL, "CompilationFailedConfig")
    assert got[5].verdict is Verdict.FAIL
    assert any("device 'gpu' from the file name" in i.note.message for i in items if i.note)


def test_a_t4_file_with_no_kernel_and_no_t1_beside_it_asks_for_one(tmp_path):
    from amk.core.errors import ImportFormatError

    path = _t4_file(tmp_path, [_result({"x": 1}, runtimes=[1.0])])
    with pytest.raises(ImportFormatError, match="--t1 FILE"):
        list(read_file(path))


def test_the_device_of_a_t4_file_comes_from_its_metadata_before_its_file_name(tmp_path):
    metadata = {"timeunit": "milliseconds", "environment": {"device_query": {"nvidia-smi": {"nvidia_smi_log": {
        "gpu": {"product_name": "NVIDIA RTX A6000"}}}}}}
    path = _t4_file(tmp_path, [_result({"x": 1}, runtimes=[1.0])], metadata)
    items = list(read_file(path, options=ImportOptions(kernel="k")))
    assert [i.record.device.name for i in items if i.record] == ["a6000"]
    assert any("from the file's metadata" in i.note.message for i in items if i.note)
