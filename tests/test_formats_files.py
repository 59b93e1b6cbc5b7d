"""How a file is read whatever its bytes, how its format is told from its structure, Triton autotune
files, versioned Kernel Tuner caches, and what makes two imports one."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

import attrs
import pytest

from amk.core.config import open_store
from amk.core.errors import ImportFormatError
from amk.core.records import Verdict, content_id, record_id
from amk.formats import detect_format, read_file, write_records

CASES = Path(__file__).parent / "data" / "ingest"
INTERRUPTED = (CASES / "interrupted-cache.json").read_bytes()


def records_of(path: Path, **kwargs):
    items = list(read_file(path, **kwargs))
    return [i.record for i in items if i.record], [i.problem for i in items if i.problem], \
        [i.note.message for i in items if i.note]


@pytest.mark.parametrize(("name", "encode"), [
    ("plain.json", lambda b: b), ("renamed.txt", lambda b: gzip.compress(b)), ("bom.json", lambda b: codecs.BOM_UTF8 + b),
    ("utf16.json", lambda b: b.decode().encode("utf-16")), ("crlf.json", lambda b: b.replace(b"\n", b"\r\n")),
])
def test_a_cache_reads_the_same_whatever_its_compression_byte_order_mark_or_line_ends(tmp_path, name, encode):
    path = tmp_path / name
    path.write_bytes(encode(INTERRUPTED))
    records, problems, _ = records_of(path)
    assert detect_format(path) == "kernel-tuner"
    assert len(records) == 6 and problems == []


def test_a_gzip_stream_cut_off_keeps_the_entries_before_the_cut_and_says_so(tmp_path):
    whole = gzip.compress((CASES / "mixed-types-a100.json").read_bytes())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    records, problems, _ = records_of(path)
    assert 0 < len(records) < 18
    assert any("gzip stream" in p.reason for p in problems) and any("cut off" in p.reason for p in problems)


def test_a_gzipped_amk_jsonl_corpus_validates(tmp_path):
    records, _, _ = records_of(CASES / "export-gemm-1024.json")
    path = tmp_path / "corpus.jsonl.gz"
    with gzip.open(path, "wt") as f:
        write_records(records, f, "amk-jsonl")
    assert detect_format(path) == "amk-jsonl"
    back, problems, _ = records_of(path)
    assert problems == [] and [r.config for r in back] == [r.config for r in records]


def test_the_format_comes_from_the_structure_not_from_words_near_the_top(tmp_path):
    # A big cache whose header comes after its entries (any key order is JSON): no header word near the top.
    data = json.loads((CASES / "mixed-types-a100.json").read_text())
    data["cache"] = {f"{k}-{i}": v for i in range(60) for k, v in data["cache"].items()}
    reordered = {"cache": data["cache"], **{k: v for k, v in data.items() if k != "cache"}}
    (tmp_path / "late-header.json").write_text(json.dumps(reordered))
    assert detect_format(tmp_path / "late-header.json") == "kernel-tuner"
    # A JSONL line that mentions Kernel Tuner's words is still a record line.
    (tmp_path / "notes.json").write_text(json.dumps({"kernel_name": "k", "tune_params": 1, "cache": "no"}))
    with pytest.raises(ImportFormatError, match="no format amk reads"):
        detect_format(tmp_path / "notes.json")


TRITON = {"key": ["4096", "4096", "torch.float16"], "configs_timings": [
    [{"kwargs": {"BLOCK_M": 128, "BLOCK_N": 64}, "num_warps": 8, "num_ctas": 1, "num_stages": 3, "maxnreg": None,
      "pre_hook": None, "ir_override": None}, [0.18, 0.17, 0.19]],
    [{"kwargs": {"BLOCK_M": 256, "BLOCK_N": 256}, "num_warps": 8, "num_ctas": 1, "num_stages": 5, "maxnreg": None,
      "pre_hook": None}, [float("inf"), float("inf"), float("inf")]],
]}


def test_a_triton_autotune_file_reads_every_config_with_its_kernel_and_key(tmp_path):
    path = tmp_path / "ZKLYCEWK" / "matmul_kernel.autotune.json"
    path.parent.mkdir()
    path.write_text(json.dumps(TRITON))
    assert detect_format(path) == "triton"
    with pytest.raises(ImportFormatError, match="--device"):
        records_of(path)
    records, problems, notes = records_of(path, device="NVIDIA H100 80GB HBM3")
    assert problems == [] and any("from --device" in n for n in notes)
    ok, failed = records
    assert (ok.workload.kind, ok.workload.name, ok.workload.shape) == \
        ("triton", "matmul_kernel", {"key": [4096, 4096, "torch.float16"]})
    assert ok.config == {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3, "num_ctas": 1}
    assert ok.measurement.latency_us == pytest.approx(180.0) and ok.device.name == "h100"
    assert failed.measurement.verdict is Verdict.FAIL


def test_a_cache_that_declares_a_schema_version_is_checked_against_kernel_tuners_schema(tmp_path, monkeypatch):
    from amk.formats import schemas

    pytest.importorskip("jsonschema", reason="checking a cache schema needs jsonschema (amk[kernel-tuner])")
    package = tmp_path / "kernel_tuner"
    (package / "schema" / "cache" / "1.0.0").mkdir(parents=True)
    (package / "schema" / "cache" / "1.0.0" / "schema.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"cache": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["time", "timestamp"]}}}}))
    monkeypatch.setattr(schemas, "kernel_tuner_dir", lambda: package)
    data = json.loads((CASES / "export-gemm-1024.json").read_text())
    data["schema_version"] = "1.0.0"
    del data["cache"]["64,2"]["timestamp"]
    (tmp_path / "versioned.json").write_text(json.dumps(data))
    _, problems, _ = records_of(tmp_path / "versioned.json")
    [problem] = problems
    assert problem.where.endswith("#64,2") and "'timestamp' is a required property" in problem.reason
    data["schema_version"] = "9.9.9"
    (tmp_path / "future.json").write_text(json.dumps(data))
    _, problems, notes = records_of(tmp_path / "future.json")
    assert problems == [] and any("ships no such cache schema" in n for n in notes)


def test_an_imports_identity_leaves_out_where_it_was_read_from_but_a_stored_id_keeps_it():
    [record, _], _, _ = records_of(CASES / "export-gemm-1024.json")
    moved = attrs.evolve(record, provenance=attrs.evolve(record.provenance, source="/elsewhere/x.json#32,1"))
    assert content_id(moved) == content_id(record)
    assert record_id(moved) != record_id(record)


@pytest.mark.parametrize("scheme", ["jsonl", "sqlite"])
def test_a_store_knows_a_record_by_its_content_read_from_any_path(tmp_path, scheme):
    records, _, _ = records_of(CASES / "export-gemm-1024.json")
    moved = [attrs.evolve(r, provenance=attrs.evolve(r.provenance, source=f"/other/machine/{i}")) for i, r in
             enumerate(records)]
    with open_store(f"{scheme}:{tmp_path / 'store'}") as store:
        store.append(records)
        asked = {content_id(r): r for r in moved}
        assert store.known_ids(asked, identity=content_id) == set(asked)
        assert store.known_ids({record_id(r): r for r in moved}) == set()


def test_a_round_trip_through_a_kernel_tuner_export_keeps_every_verdict_and_marker_in_place(tmp_path):
    from amk.formats.kernel_tuner import kernel_tuner_cache

    text = (CASES / "kernel-tuner-1.5-c-backend-cache.json").read_text()
    records, _, _ = records_of(CASES / "kernel-tuner-1.5-c-backend-cache.json", device="cpu")
    cache = kernel_tuner_cache(records)
    failed = cache["cache"]["128,3"]
    assert failed["__error__"] == "CompilationFailedConfig" and "time" not in failed
    (tmp_path / "back.json").write_text(json.dumps(cache))
    assert cache["device_name"] == "cpu" and json.loads(text)["objective"] == cache["objective"]
    back, problems, _ = records_of(tmp_path / "back.json")
    assert problems == []
    assert [(r.config, r.measurement, r.provenance.extra["entry"]) for r in back] == \
        [(r.config, r.measurement, r.provenance.extra["entry"]) for r in records]


def test_an_amk_jsonl_file_with_a_damaged_first_line_is_still_read_line_by_line(tmp_path):
    records, _, _ = records_of(CASES / "export-gemm-1024.json")
    path = tmp_path / "corpus.jsonl"
    with (tmp_path / "whole.jsonl").open("w") as whole:
        write_records(records, whole, "amk-jsonl")
    path.write_text('{"schema_version": 1, "workl\n' + (tmp_path / "whole.jsonl").read_text())
    back, problems, _ = records_of(path)
    assert len(back) == 2 and [p.where for p in problems] == [f"{path}:1"]


def test_a_json_array_is_said_to_be_an_array_not_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]\n")
    with pytest.raises(ImportFormatError, match=r"list\.json: a JSON array, not the JSON object .*each a JSON object"):
        detect_format(path)


@pytest.mark.parametrize("device", ["", "  "])
def test_an_empty_device_given_is_refused_as_given_not_taken_for_none(device):
    path = Path(__file__).parent / "data" / "ingest" / "kernel-tuner-1.5-c-backend-cache.json"
    with pytest.raises(ImportFormatError, match=rf"--device '{device}': a device name must be a non-empty string, "
                                                rf"got '{device}'; give e\.g\. --device a100"):
        list(read_file(path, device=device))


def test_a_list_holding_an_integer_too_large_for_a_float_is_kept_not_a_crash():
    from amk.formats.values import without_nonfinite

    found: list[str] = []
    huge = 10 ** 400
    assert without_nonfinite({"sizes": [1, huge, float("nan")]}, "", found) == {"sizes": [1, huge, None]}
    assert found == ["sizes[2]"]


@pytest.mark.parametrize("time", [[1.0], {"ms": 1.0}])
def test_a_cache_entry_whose_time_is_a_list_or_an_object_is_one_problem_naming_the_field(tmp_path, time):
    header = {"device_name": "NVIDIA A100-PCIE-40GB", "kernel_name": "k", "problem_size": [64],
              "tune_params_keys": ["bx"], "tune_params": {"bx": [32, 64]}, "objective": "time"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**header, "cache": {"32": {"bx": 32, "time": time}, "64": {"bx": 64, "time": 2.0}}}))
    records, [problem], _ = records_of(path)
    assert len(records) == 1 and problem.where == f"{path}#32"
    assert problem.reason.startswith(f"'time' is {time!r}") and "milliseconds" in problem.reason


def test_a_cache_key_that_disagrees_with_its_entrys_values_is_read_by_the_values_and_said(tmp_path):
    header = {"device_name": "NVIDIA A100-PCIE-40GB", "kernel_name": "k", "problem_size": [64],
              "tune_params_keys": ["bx", "by"], "tune_params": {"bx": [32, 64], "by": [1]}, "objective": "time"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**header, "cache": {"32,1": {"bx": 64, "by": 1, "time": 1.0},
                                                    "64,1": {"bx": 64, "by": 1, "time": 2.0}}}))
    records, problems, notes = records_of(path)
    assert [r.config for r in records] == [{"bx": 64, "by": 1}] * 2 and problems == []
    assert notes == ["a cache key that disagrees with the entry's own parameter values (read by the values) in "
                     "1 entry (32,1)"]
