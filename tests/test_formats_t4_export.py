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
