"""T4 exports: an export of the six ../shared/data/t4 files validates against the T4 results schema that
kernel_tuner ships and imports back identically; a document that breaks the schema is never written."""

from __future__ import annotations

import attrs
import pytest
from test_formats_t4 import SHARED, TWINS, _records, t4_records

from amk.core.errors import ExportError
from amk.formats import write_records
from amk.formats.t4 import check_t4


@pytest.mark.slow
@pytest.mark.parametrize(("kernel", "device"), TWINS)
def test_a_t4_export_validates_against_the_t4_schema_and_imports_back_identically(kernel, device, tmp_path):
    pytest.importorskip("jsonschema", reason="checking a T4 export needs jsonschema (amk[kernel-tuner])")
    pytest.importorskip("kernel_tuner", reason="the T4 schema ships with kernel_tuner (amk[kernel-tuner])")
    records = t4_records(kernel, device)
    out = tmp_path / f"{device}_T4.json"
    with out.open("w") as f:
        written = write_records(records, f, "t4")  # checks against the schema before writing
    assert written == len(records)
    t1 = next((SHARED / "t4" / kernel).glob("*.T1.json"))
    back, problems = _records(out, t1=t1, device=device)
    assert problems == []
    without_source = [attrs.evolve(r, provenance=attrs.evolve(r.provenance, source=None)) for r in back]
    assert without_source == [attrs.evolve(r, provenance=attrs.evolve(r.provenance, source=None)) for r in records]


def test_an_export_that_breaks_the_t4_schema_is_refused_before_anything_is_written():
    pytest.importorskip("jsonschema", reason="checking a T4 export needs jsonschema (amk[kernel-tuner])")
    pytest.importorskip("kernel_tuner", reason="the T4 schema ships with kernel_tuner (amk[kernel-tuner])")
    document = {"schema_version": "1.0.0", "results": [{"configuration": {}, "times": {}, "invalidity": "bogus",
                                                         "correctness": 1}]}
    with pytest.raises(ExportError, match="invalidity"):
        check_t4(document)


def test_a_t4_export_of_a_kernel_tuner_cache_names_its_device_so_the_import_reads_it_back(tmp_path):
    from pathlib import Path

    from test_formats_t4 import _records as read

    cache = Path(__file__).parent / "data" / "ingest" / "device-a100-full.json"
    records, problems = read(cache)
    assert records and problems == []
    out = tmp_path / "export_T4.json"  # a file name that names no device
    with out.open("w") as f:
        write_records(records, f, "t4")
    size = records[0].workload.shape["problem_size"]
    back, problems = read(out, kernel=records[0].workload.name, problem_size=tuple(size) if isinstance(size, list) else size)
    assert problems == []
    assert {r.device.name for r in back} == {records[0].device.name} != {"export"}


def test_results_of_t4_files_in_different_units_keep_their_runtimes_in_milliseconds(tmp_path):
    import json

    from test_formats_t4 import _records as read

    def result(runtimes, unit):
        return {"configuration": {"bx": 16}, "times": {"runtimes": runtimes, "compilation": runtimes[0]},
                "invalidity": "correct", "correctness": 1, "objectives": ["time"],
                "measurements": [{"name": "time", "value": runtimes[1], "unit": unit}]}

    records = []
    for name, timeunit, runtimes in (("ms_T4.json", "ms", [1.0, 1.1, 1.2]), ("s_T4.json", "seconds", [0.002, 0.0021])):
        (tmp_path / name).write_text(json.dumps({"schema_version": "1.0.0", "metadata": {"timeunit": timeunit},
                                                 "results": [result(runtimes, "")]}))
        records += read(tmp_path / name, kernel="k", problem_size=8, device="a100")[0]
    out = tmp_path / "both_T4.json"
    with out.open("w") as f:
        write_records(records, f, "t4")
    written = json.loads(out.read_text())["results"]
    assert [r["times"]["runtimes"] for r in written] == [[1.0, 1.1, 1.2], pytest.approx([2.0, 2.1])]
    assert written[1]["times"]["compilation"] == pytest.approx(2.0) and written[1]["measurements"][0]["unit"] == "ms"
    back, problems = read(out, kernel="k", problem_size=8)
    assert problems == []
    assert [(r.measurement.latency_us, r.measurement.samples) for r in back] == \
        [(r.measurement.latency_us, r.measurement.samples) for r in records] == [(1100.0, 3), (2050.0, 2)]
