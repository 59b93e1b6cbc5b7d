"""The cpu backend's compiled kernels measured in a worker process, end to end."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the cpu backend needs torch (pip install 'amk[torch]')")

from amk.backends import cpu as cpu_backend  # noqa: E402
from amk.core.backend import Backend
from amk.core.columns import CorpusColumns  # noqa: E402
from amk.core.plugins import get_registry  # noqa: E402
from amk.core.records import MeasurementKind, Verdict  # noqa: E402
from amk.stores.memory import MemoryStore  # noqa: E402
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings  # noqa: E402
from amk.tuning.target import TuneTarget
from tests.kernels_helpers import tiny_workload  # noqa: E402


@pytest.fixture(scope="module")
def cpu():
    """The registry's cpu backend with short timings, and this machine's CPU as the device."""
    backend = get_registry().create(Backend, "cpu", cpu_backend.CpuBackend.Options(repeats=3, warmup=1,
                                                                                   memory_budget_mb=64))
    available, why = backend.availability()
    if not available:
        pytest.skip(f"the cpu backend cannot run here: {why}")
    return backend, backend.local_device()


def test_the_cpu_backend_measures_in_one_worker_process_kept_across_configs(cpu):
    from amk.tuning.isolation import make_measurer

    backend, device = cpu
    measurer = make_measurer(backend, "auto")
    try:
        space = backend.search_space(tiny_workload(), device)
        configs = [space.default_config, {**space.default_config, "k_unroll": 1}]
        results = [measurer.measure(tiny_workload(), device, c, 120.0) for c in configs]
    finally:
        measurer.close()
    assert measurer.mode == "process" and measurer.starts == 1
    assert [m.verdict for m in results] == [Verdict.PASS, Verdict.PASS], [m.reason for m in results]
    assert all(m.kind is MeasurementKind.MEASURED and m.bound_us > 0 for m in results)


def test_a_tune_run_of_the_cpu_backend_in_process_mode_records_measured_points(cpu):
    backend, device = cpu
    settings = TuneSettings(policy="prior", isolation="process", ab_rounds=1, timeout_s=120.0)
    target = TuneTarget.prepare(tiny_workload(), device, backend, CorpusColumns.from_records([]), settings)
    store = MemoryStore()
    result = tune(target, settings, budget=3, store=store)
    records = list(store.query())
    assert result.isolation == "process" and len(result.state.trials) == 3
    assert {r.measurement.kind for r in records} == {MeasurementKind.MEASURED}
    assert any(r.measurement.verdict is Verdict.PASS for r in records)
