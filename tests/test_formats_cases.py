"""Every row of ../shared/cases/ingest/README.md, pinned: real-world inputs and what amk must do with them.

The case files are copied in tests/data/ingest. Each test runs the command a user would (in process,
through click), on a store of its own.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import amk.cli
from amk.core.config import open_store
from amk.core.records import Verdict
from amk.formats import read_file

CASES = Path(__file__).parent / "data" / "ingest"


def amk_cli(*args: str):
    return CliRunner().invoke(amk.cli.main, list(args), catch_exceptions=False)


def stored(store: Path) -> list:
    with open_store(f"jsonl:{store}") as s:
        return list(s.query())


def test_a_torn_cache_imports_every_whole_entry_and_reports_the_cut_once(tmp_path):
    store = tmp_path / "s.jsonl"
    done = amk_cli("-q", "--store", f"jsonl:{store}", "corpus", "import", str(CASES / "torn-cache.json"))
    assert done.exit_code == 1
    assert "imported 5 records" in done.stdout and "1 bad entries" in done.stdout
    [problem] = [line for line in done.stderr.splitlines() if "torn-cache.json" in line]
    assert "line 7" in problem and "cut off" in problem and "'128,2'" in problem
    assert len(stored(store)) == 5


def test_an_interrupted_cache_left_open_imports_whole_and_exits_0_saying_it_was_open(tmp_path):
    store = tmp_path / "s.jsonl"
    done = amk_cli("--store", f"jsonl:{store}", "corpus", "import", str(CASES / "interrupted-cache.json"))
    assert done.exit_code == 0, done.output
    assert "imported 6 records" in done.stdout and "0 bad entries" in done.stdout
    assert "left open" in done.stderr


def test_a_non_utf8_byte_keeps_the_cache_and_its_entry_and_says_where_the_byte_was(tmp_path):
    items = list(read_file(CASES / "latin1-byte-cache.json"))
    records = [i.record for i in items if i.record]
    assert len(records) == 6 and not [i for i in items if i.problem]
    kept = next(r for r in records if r.config == {"bx": 64, "by": 2})
    assert kept.provenance.extra["entry"]["note"] == "caf\ufffd r\ufffdsum\ufffd"
    [note] = [i.note.message for i in items if i.note]
    assert "not UTF-8" in note and "'64,2'" in note and "line 5" in note


def test_nan_infinity_zero_and_negative_times_are_entries_reported_by_their_own_field(tmp_path):
    store = tmp_path / "s.jsonl"
    done = amk_cli("--store", f"jsonl:{store}", "corpus", "import", str(CASES / "nan-inf-times-cache.json"))
    assert done.exit_code == 1 and "Traceback" not in done.output
    problems = {line.split("#")[1].split(":")[0]: line for line in done.stderr.splitlines() if "#" in line}
    assert sorted(problems) == ["16,2", "32,1", "32,2", "64,1", "64,2"]
    assert all("'time'" in problems[k] for k in ("16,2", "32,1", "32,2", "64,1"))
    assert "'times[1]'" in problems["64,2"]
    assert "spread" not in done.stderr
    records = {json.dumps(r.config): r for r in stored(store)}
    nan_metric = records[json.dumps({"bx": 128, "by": 1})]
    assert nan_metric.measurement.verdict is Verdict.PASS and nan_metric.provenance.extra["entry"]["GFLOP/s"] is None
    assert "GFLOP/s" in done.stderr and "kept as null" in done.stderr


@pytest.mark.parametrize(("name", "size"), [
    ("problem-size-list.json", [4096, 4096]), ("problem-size-int.json", 4096),
    ("problem-size-expr.json", ["nx", "ny"]), ("problem-size-mixed.json", ["bx*64", 1]),
    ("problem-size-callable.json", "callable"), ("problem-size-numpy_like.json", [4096, 4096]),
])
def test_every_form_of_problem_size_imports_kept_as_given(name, size):
    records = [i.record for i in read_file(CASES / name) if i.record]
    assert len(records) == 2 and {json.dumps(r.workload.shape) for r in records} == {json.dumps({"problem_size": size})}


def test_validate_checks_every_file_it_is_given_even_after_a_bad_one(tmp_path):
    done = amk_cli("corpus", "validate", str(CASES / "device-non-ascii-name.json"),
                   *(str(p) for p in sorted(CASES.glob("problem-size-*.json"))))
    assert done.exit_code == 1
    assert done.stdout.count("2 valid records, 0 bad") == 6
    assert "device-non-ascii-name.json: 0 valid records, 1 bad" in done.stdout


def test_seeds_written_2_0_and_true_warm_start_a_space_written_2_and_1(tmp_path):
    store = tmp_path / "s.jsonl"
    amk_cli("--store", f"jsonl:{store}", "corpus", "import", str(CASES / "mixed-types-a100.json"))
    done = amk_cli("--store", f"jsonl:{store}", "tune", "--workload", "kernel_tuner:mixk", "--problem-size",
                   "1024,1024", "--device", "NVIDIA RTX A4000", "--backend", "replay", "--backend-option",
                   f"cache={CASES / 'mixed-types-a4000.json'}", "--budget", "3", "--state", str(tmp_path / "st.json"),
                   "--report-dir", str(tmp_path), "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert len(report["warm_start"]) == 3 and "cold start" not in " ".join(report["warm_start"])
    # The other device measured this workload: its configs, matched by value, seed in its zero-shot order.
    assert all("zero-shot order (mean relative latency on a100" in s for s in report["warm_start"])
    assert report["warm_start_left_out"] == 0


def test_a_cache_with_naive_timestamps_imports_the_same_in_every_time_zone_and_once(tmp_path, monkeypatch):
    store = tmp_path / "s.jsonl"
    stamps = []
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        stamps.append(sorted(i.record.provenance.timestamp for i in read_file(CASES / "naive-timestamps-cache.json")
                             if i.record))
        amk_cli("--store", f"jsonl:{store}", "corpus", "import", str(CASES / "naive-timestamps-cache.json"))
    monkeypatch.delenv("TZ")
    time.tzset()
    assert stamps[0] == stamps[1] == stamps[2] == [1709294400.25, 1709294401.5]  # 2024-03-01 12:00:00.25 UTC
    assert len(stored(store)) == 2


def test_the_same_file_by_a_relative_and_an_absolute_path_is_one_import(tmp_path, monkeypatch):
    shutil.copy(CASES / "export-gemm-1024.json", tmp_path / "gemm.json")
    store = tmp_path / "s.jsonl"
    monkeypatch.chdir(tmp_path)
    first = amk_cli("--store", f"jsonl:{store}", "corpus", "import", "gemm.json")
    again = amk_cli("--store", f"jsonl:{store}", "corpus", "import", str(tmp_path / "gemm.json"))
    copy = tmp_path / "elsewhere" / "renamed.json"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "gemm.json", copy)
    third = amk_cli("--store", f"jsonl:{store}", "corpus", "import", str(copy))
    assert "imported 2 records" in first.stdout
    assert "imported 0 records" in again.stdout and "2 already in the store" in again.stdout
    assert "imported 0 records" in third.stdout
    assert len(stored(store)) == 2


def test_a_kernel_tuner_1_5_cache_imports_every_failure_with_its_verdict_given_a_device():
    items = list(read_file(CASES / "kernel-tuner-1.5-c-backend-cache.json", device="cpu"))
    records = [i.record for i in items if i.record]
    assert not [i for i in items if i.problem]
    verdicts = {r.provenance.source.split("#")[1]: (r.measurement.verdict, r.measurement.reason) for r in records}
    assert verdicts["128,3"] == verdicts["256,3"] == (Verdict.FAIL, "CompilationFailedConfig")
    assert verdicts["128,1"][0] is Verdict.PASS and records[0].device.name == "cpu"


@pytest.mark.parametrize("command", [["corpus", "import"], ["corpus", "validate"]])
def test_import_and_validate_of_a_cache_naming_no_device_ask_for_device_and_take_it(tmp_path, command):
    path = str(CASES / "kernel-tuner-1.5-c-backend-cache.json")
    store = ["--store", f"jsonl:{tmp_path / 's.jsonl'}"]
    without = amk_cli(*store, *command, path)
    assert without.exit_code == 1 and "--device" in without.stderr and "kernel-tuner-1.5" in without.stderr
    given = amk_cli(*store, *command, "--device", "cpu", path)
    assert given.exit_code == 0, given.output


def test_simulate_takes_device_for_a_cache_that_names_none(tmp_path):
    from amk.simulate import load_cache

    with pytest.warns(UserWarning, match="device 'my-cpu' from --device"):
        cache = load_cache(CASES / "kernel-tuner-1.5-c-backend-cache.json", "my-cpu")
    assert cache.device_label == "my-cpu" and len(cache.records) == 4
    with pytest.warns(UserWarning) as said:
        by_name = load_cache(CASES / "kernel-tuner-1.5-c-backend-cache.json")
    assert by_name.device_label == "kernel-tuner-1-5-c-backend-cache"
    assert [str(w.message).split("; ")[0].endswith("names no device") for w in said] == [True]  # not "from --device"


def test_tune_with_the_replay_backend_replays_a_cache_naming_no_device_as_the_tuned_device(tmp_path):
    done = amk_cli("--store", f"jsonl:{tmp_path / 's.jsonl'}", "tune", "--workload", "kernel_tuner:scale",
                   "--problem-size", "20000", "--device", "cpu", "--backend", "replay", "--backend-option",
                   f"cache={CASES / 'kernel-tuner-1.5-c-backend-cache.json'}", "--budget", "2",
                   "--state", str(tmp_path / "st.json"), "--report-dir", str(tmp_path))
    assert done.exit_code == 0, done.output
    assert "replayed as the tuned device 'cpu'" in done.stderr


def test_a_mig_slice_and_the_full_gpu_are_distinct_devices_with_their_own_specs():
    full = next(i.record for i in read_file(CASES / "device-a100-full.json") if i.record).device
    mig = next(i.record for i in read_file(CASES / "device-a100-mig-slice.json") if i.record).device
    assert (full.name, full.sm_count, full.mem_bandwidth_gbps) == ("a100-sxm4-80gb", 108, 2039.0)
    assert (mig.name, mig.sm_count, mig.memory_gb) == ("a100-pcie-80gb-mig-1g.10gb", 14, 10.0)
    assert mig.mem_bandwidth_gbps == pytest.approx(1935.0 / 8)


def test_a_warm_start_for_a_mig_slice_does_not_pass_the_full_gpus_best_as_its_own(tmp_path):
    from amk.core.workload import Workload
    from amk.prior.warm_start import warm_start

    records = [i.record for name in ("device-a100-full.json", "device-a100-mig-slice.json")
               for i in read_file(CASES / name) if i.record]
    slice_name = "NVIDIA A100 80GB PCIe MIG 1g.10gb"
    [best, _] = warm_start(Workload("kernel_tuner", "dev_k", {"problem_size": [1024, 1024]}), slice_name, records, k=2)
    assert best.device == "a100-pcie-80gb-mig-1g.10gb" and best.config == {"bx": 32, "by": 1}  # the slice's own best


def test_a_device_name_with_no_ascii_letter_is_an_error_naming_the_file_and_device(tmp_path):
    done = amk_cli("--store", f"jsonl:{tmp_path / 's.jsonl'}", "corpus", "import",
                   str(CASES / "device-non-ascii-name.json"))
    assert done.exit_code == 1
    assert "device-non-ascii-name.json" in done.stderr and "--device" in done.stderr
    assert "Traceback" not in done.output


def test_export_selects_one_problem_size_and_an_ambiguous_export_names_the_sizes(tmp_path):
    store = ["--store", f"jsonl:{tmp_path / 's.jsonl'}"]
    amk_cli(*store, "corpus", "import", str(CASES / "export-gemm-1024.json"), str(CASES / "export-gemm-2048.json"))
    ambiguous = amk_cli(*store, "corpus", "export", "--format", "kernel-tuner", "--workload-name", "gemm_kernel")
    assert ambiguous.exit_code == 1
    assert "[1024, 1024]" in ambiguous.stderr and "[2048, 2048]" in ambiguous.stderr
    assert "--problem-size" in ambiguous.stderr
    chosen = amk_cli(*store, "corpus", "export", "--format", "kernel-tuner", "--workload-name", "gemm_kernel",
                     "--problem-size", "2048,2048")
    assert chosen.exit_code == 0, chosen.output
    cache = json.loads(chosen.stdout)
    assert cache["problem_size"] == [2048, 2048] and sorted(cache["cache"]) == ["32,1", "64,2"]
