"""The cuda backend on a real GPU: built kernels checked against torch and timed. Skips without a GPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the cuda backend needs torch (pip install 'amk[torch]')")

from amk.backends import cuda as cuda_backend
from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.plugins import create
from amk.core.records import Verdict
from tests.kernels_helpers import TINY_SHAPE, tiny_workload

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to torch (none here)"),
]

FAST = cuda_backend.CudaBackend.Options(warmup=2, repeats=5, memory_budget_mb=1024)


@pytest.fixture(scope="module")
def backend():
    b = create(Backend, "cuda", FAST)
    ok, why = b.availability()
    if not ok:
        pytest.skip(f"the cuda backend cannot run here: {why}")
    return b


@pytest.fixture(scope="module")
def device(backend) -> Device:
    return backend.local_device()


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_default_config_passes_above_the_floor(backend, device, dtype):
    workload = tiny_workload(dtype)
    m = backend.measure(workload, device, backend.search_space(workload, device).default_config)
    assert m.verdict is Verdict.PASS, m.reason
    assert m.latency_us >= m.bound_us
    assert m.samples == FAST.repeats


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_every_distinct_kernel_matches_torch(backend, device, dtype):
    workload = tiny_workload(dtype)
    space = backend.search_space(workload, device)
    seen = set()
    for config in space:
        variant = cuda_backend.kernel_variant(config)
        if variant in seen:
            continue
        seen.add(variant)
        m = backend.measure(workload, device, {**config, "gemv_n_tile": 16})
        assert m.verdict is Verdict.PASS, (config, m.reason)
    assert seen == set(cuda_backend.distinct_kernel_variants(device))


def test_every_n_tile_matches_torch(backend, device):
    workload = tiny_workload("bf16")
    default = backend.search_space(workload, device).default_config
    for n_tile in cuda_backend.N_TILES:
        m = backend.measure(workload, device, {**default, "gemv_n_tile": n_tile})
        assert m.verdict is Verdict.PASS, (n_tile, m.reason)


def test_a_latency_below_the_floor_is_rejected(backend, device):
    # A device that claims 1 MB/s puts the floor far above any real latency.
    claimed = Device(device.name, arch=device.arch, mem_bandwidth_gbps=1e-3)
    workload = tiny_workload("bf16", TINY_SHAPE)
    m = backend.measure(workload, claimed, backend.search_space(workload, device).default_config)
    assert m.verdict is Verdict.REJECTED and "below the memory-bandwidth floor" in m.reason


def test_another_gpu_name_is_rejected(backend, device):
    other = Device("not-" + device.name)
    workload = tiny_workload()
    m = backend.measure(workload, other, backend.search_space(workload, device).default_config)
    assert m.verdict is Verdict.REJECTED and device.name in m.reason


def test_the_measured_bandwidth_is_cached_per_gpu(backend):
    first = backend.measured_bandwidth_gbps()
    assert first > 50
    assert backend.measured_bandwidth_gbps() == first
