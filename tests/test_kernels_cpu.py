"""The cpu backend end to end: a real compiled kernel, checked against torch, timed, stored as a record."""

from __future__ import annotations

import itertools
import json
import time

import pytest

torch = pytest.importorskip("torch", reason="the cpu backend needs torch (pip install 'amk[torch]')")

from amk.backends import cpu as cpu_backend
from amk.backends.cache_dir import CACHE_ENV_VAR
from amk.backends.gemv_step import check_step_outputs, latency_stats, output_error, plan_decode_step
from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import BackendError, ValidationError
from amk.core.plugins import create
from amk.core.records import Provenance, Record, Verdict, record_from_dict, record_to_dict
from amk.core.workload import Workload
from amk.decode.shapes import ModelShape
from amk.decode.workload import decode_workload
from amk.testing import backend_checks, parametrize_with_checks
from tests.kernels_helpers import RAGGED_SHAPE, TINY_SHAPE, tiny_workload

FAST = {"warmup": 1, "repeats": 5, "memory_budget_mb": 64}


@pytest.fixture(scope="session")
def backend():
    """The cpu backend with the kernel built (once per machine: later sessions load it from the cache)."""
    b = create(Backend, "cpu", cpu_backend.CpuBackend.Options(**FAST))
    cpu_backend.load_extension()
    return b


@pytest.fixture(scope="session")
def device(backend) -> Device:
    return backend.local_device()


def new_fast_backend() -> cpu_backend.CpuBackend:
    """A new cpu backend that measures with few repeats (each contract check gets its own)."""
    return create(Backend, "cpu", cpu_backend.CpuBackend.Options(**FAST))


@pytest.mark.slow
@parametrize_with_checks(backend_checks(new_fast_backend, tiny_workload("fp32"), label="cpu"))
def test_the_cpu_backend_meets_the_backend_contract(check, backend, device):
    check(device=device)  # this machine's CPU (the session's backend has built or loaded the kernel)


def test_local_device_is_this_cpu_with_its_measured_bandwidth(device):
    assert device.name.startswith("cpu-")
    assert device.mem_bandwidth_gbps == pytest.approx(cpu_backend.measure_bandwidth_gbps())
    assert 0.5 < device.mem_bandwidth_gbps < 5000


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_default_config_passes_and_is_timed_above_the_floor(backend, device, dtype):
    workload = tiny_workload(dtype)
    m = backend.measure(workload, device, backend.search_space(workload, device).default_config)
    assert m.verdict is Verdict.PASS, m.reason
    assert m.samples == FAST["repeats"]
    assert m.latency_us >= m.bound_us * (1 - backend.options.floor_tolerance)
    assert m.spread_us >= 0
    assert m.bound_us == pytest.approx(backend.floor_us(workload, device))


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_every_compiled_kernel_matches_torch_including_ragged_tails(backend, device, dtype):
    workload = tiny_workload(dtype, RAGGED_SHAPE)
    ext = cpu_backend.load_extension()
    prepared = backend.prepare(workload)
    for cols, unroll, prefetch in itertools.product(cpu_backend.COLS_PER_THREAD, cpu_backend.K_UNROLLS, (0, 8)):
        for y in prepared.ys:
            y.fill_(float("nan"))
        ext.gemv_step(prepared.replicas[0], prepared.xs, prepared.ys, cols, unroll, prefetch, 2, 16)
        assert check_step_outputs(prepared) is None, (cols, unroll, prefetch)


def test_output_check_names_outputs_beyond_the_dtype_tolerance():
    reference = torch.linspace(-3, 3, 64)
    assert output_error(reference.to(torch.bfloat16), reference, "bf16") is None
    wrong = reference.clone()
    wrong[7] += 0.5
    reason = output_error(wrong, reference, "bf16")
    assert reason is not None and "1 of 64 outputs" in reason and "output 7" in reason


def test_output_check_rejects_non_finite_outputs():
    reference = torch.ones(8)
    broken = reference.clone()
    broken[3] = float("nan")
    assert "not finite" in output_error(broken, reference, "fp32")


def test_config_outside_the_search_space_is_rejected_not_raised(backend, device):
    workload = tiny_workload()
    config = {**backend.search_space(workload, device).default_config, "k_unroll": 3}
    m = backend.measure(workload, device, config)
    assert m.verdict is Verdict.REJECTED
    assert "k_unroll=3" in m.reason


def test_another_device_is_refused_so_no_record_is_mislabelled(backend):
    workload = tiny_workload()
    with pytest.raises(BackendError, match="'h100'"):
        backend.search_space(workload, Device("h100"))


def test_a_workload_that_is_not_a_decode_step_is_refused(backend, device):
    with pytest.raises(ValidationError, match="decode"):
        backend.search_space(Workload("kernel_tuner", "vector_add", {"problem_size": [1024]}), device)


def test_single_thread_configs_differing_only_in_n_tile_are_one_kernel(backend, device):
    space = backend.search_space(tiny_workload(), device)
    single = [c for c in space if c["threads"] == 1]
    assert {c["n_tile"] for c in single} == {cpu_backend.DEFAULT_N_TILE}
    assert len(single) == len(cpu_backend.COLS_PER_THREAD) * len(cpu_backend.K_UNROLLS) * len(cpu_backend.PREFETCH_LINES)


def test_thread_choices_are_powers_of_two_and_the_cpu_count():
    assert cpu_backend.thread_choices(6) == (1, 2, 4, 6)
    assert cpu_backend.thread_choices(8) == (1, 2, 4, 8)
    assert cpu_backend.thread_choices(1) == (1,)


def test_layer_count_is_scaled_down_to_fit_the_memory_budget():
    shape = ModelShape(hidden=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, intermediate=8192)
    workload = decode_workload("1b", shape, dtype="bf16")
    full = plan_decode_step(workload, 1 << 40)
    assert full.layers == 16
    budget = 3 * full.layer_bytes + 1
    scaled = plan_decode_step(workload, budget)
    assert scaled.layers == 3 and scaled.model_layers == 16
    assert scaled.weight_bytes <= budget
    assert plan_decode_step(workload, 1).layers == 1  # never zero layers


def test_floor_is_the_planned_weight_bytes_over_the_measured_bandwidth(backend, device):
    workload = tiny_workload("fp16")
    plan = backend.plan(workload)
    expected_us = plan.weight_bytes / (cpu_backend.measure_bandwidth_gbps() * 1e9) * 1e6
    assert backend.floor_us(workload, device) == pytest.approx(expected_us)


def test_latency_stats_are_the_median_and_interquartile_range():
    median, iqr = latency_stats([1e-6, 2e-6, 3e-6, 4e-6, 100e-6])
    assert median == pytest.approx(3.0)
    assert iqr == pytest.approx(2.0)


def test_bandwidth_is_measured_once_then_read_from_the_cache(backend, monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))  # the kernel stays loaded; only the measurement moves
    first = cpu_backend.measure_bandwidth_gbps(buffer_mb=64)
    cached = json.loads((tmp_path / cpu_backend.BANDWIDTH_CACHE).read_text())
    assert next(iter(cached.values()))["gbps"] == first
    start = time.perf_counter()
    assert cpu_backend.measure_bandwidth_gbps(buffer_mb=64) == first
    assert time.perf_counter() - start < 0.5


def test_a_measurement_becomes_a_record_that_round_trips_through_a_store(backend, device, tmp_path):
    from amk.stores.jsonl import JsonlStore

    workload = tiny_workload("bf16", TINY_SHAPE)
    config = backend.search_space(workload, device).default_config
    m = backend.measure(workload, device, config)
    assert m.verdict is Verdict.PASS, m.reason
    record = Record(workload=workload, device=device, config=config, measurement=m,
                    provenance=Provenance(backend=backend.name, backend_version=backend.version,
                                          timestamp=time.time()))
    store = JsonlStore(JsonlStore.Options(path=str(tmp_path / "corpus.jsonl")))
    assert store.append([record]) == 1
    (stored,) = list(store.query())
    assert stored == record_from_dict(record_to_dict(record))
    assert stored.measurement.latency_us == m.latency_us and stored.device.name == device.name
