"""``amk doctor``: what is installed, which backends can run here and why not, the measured bandwidth."""

from __future__ import annotations

import json

import pytest


def test_doctor_says_which_backends_can_run_and_why_the_others_cannot(run_amk):
    result = run_amk("doctor", "--no-measure", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    backends = {row["name"]: row for row in report["backends"]}
    assert {"cpu", "cuda"} <= set(backends)
    for row in backends.values():
        assert row["why"], row  # a reason either way
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert backends["cuda"]["can_run"] is False
        assert "CPU-only" in backends["cuda"]["why"] or "no GPU" in backends["cuda"]["why"]


def test_doctor_lists_installed_packages_and_tools(run_amk):
    result = run_amk("doctor", "--no-measure")
    assert result.returncode == 0, result.stderr
    assert "Packages:" in result.stdout and "torch" in result.stdout
    assert "Backends:" in result.stdout and "cpu" in result.stdout


def test_doctor_reports_the_memory_bandwidth_measured_here(run_amk):
    pytest.importorskip("torch")
    from amk.backends import cpu as cpu_backend

    cpu_backend.load_extension()  # built once per machine; the CLI below loads the cached build
    expected = cpu_backend.measure_bandwidth_gbps()
    result = run_amk("doctor", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    cpu_row = next(row for row in json.loads(result.stdout)["backends"] if row["name"] == "cpu")
    assert cpu_row["can_run"] is True
    assert cpu_row["measured_bandwidth_gbps"] == pytest.approx(expected)
    assert cpu_row["device"]["name"].startswith("cpu-")


def test_doctor_require_fails_naming_why_a_required_backend_cannot_run(run_amk):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("the cuda backend can run here, so requiring it cannot fail")
    result = run_amk("doctor", "--no-measure", "--require", "cuda")
    assert result.returncode == 1
    assert "the required backend 'cuda' cannot run here" in result.stderr


def test_doctor_require_passes_for_a_backend_that_can_run(run_amk):
    pytest.importorskip("torch")
    result = run_amk("doctor", "--no-measure", "--require", "cpu")
    assert result.returncode == 0, result.stderr


def test_doctor_require_of_an_unknown_backend_lists_the_known_ones(run_amk):
    result = run_amk("doctor", "--no-measure", "--require", "tpu")
    assert result.returncode == 1
    assert "no backend named 'tpu'" in result.stderr and "cpu" in result.stderr
