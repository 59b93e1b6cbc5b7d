"""``amk tune --backend cpu``: the tuning loop measuring real compiled kernels into the corpus."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="the cpu backend needs torch (pip install 'amk[torch]')")

from amk.backends import cpu as cpu_backend  # noqa: E402

SHAPE = "hidden=256,n_layers=2,n_heads=4,n_kv_heads=2,head_dim=64,intermediate=512,dtype=bf16"


@pytest.fixture
def cpu_device_name(run_amk) -> str:
    cpu_backend.load_extension()  # built once per machine; the CLI loads the cached build
    cpu_backend.measure_bandwidth_gbps()
    return cpu_backend.local_cpu_device().name


def test_tune_with_the_cpu_backend_appends_measured_records(run_amk, tmp_path, cpu_device_name):
    result = run_amk("tune", "--workload", "decode:tiny", "--shape", SHAPE, "--device", "local",
                     "--backend", "cpu", "--backend-option", "repeats=5", "--backend-option", "memory_budget_mb=64",
                     "--budget", "6", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / ".amk" / "corpus.jsonl").read_text().splitlines()]
    assert records, "no record appended"
    assert {r["provenance"]["backend"] for r in records} == {"cpu"}
    assert {r["measurement"]["kind"] for r in records} == {"measured"}
    assert {r["device"]["name"] for r in records} == {cpu_device_name}
    passed = [r for r in records if r["measurement"]["verdict"] == "PASS"]
    assert passed and all(r["measurement"]["bound_us"] > 0 for r in passed)


def test_device_local_is_refused_for_a_backend_that_measures_no_hardware(run_amk):
    result = run_amk("tune", "--workload", "decode:tiny", "--shape", SHAPE, "--device", "local",
                     "--backend", "roofline", "--budget", "2")
    assert result.returncode == 1
    assert "measures no local hardware; name the device with --device" in result.stderr
