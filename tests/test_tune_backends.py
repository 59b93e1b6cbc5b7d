"""The replay and roofline backends (each meets amk.testing's backend contract) and the memory store."""

from __future__ import annotations

import pytest

from amk.backends.replay import ABSENT_REASON, ReplayBackend
from amk.backends.roofline import RooflineBackend, canonical_knobs
from amk.core.devices import Device, resolve_device
from amk.core.errors import BackendError, InvalidConfigError
from amk.core.records import MeasurementKind, Verdict
from amk.core.store import Store
from amk.core.workload import Workload
from amk.decode.shapes import ModelShape
from amk.decode.workload import decode_workload
from amk.formats.kernel_tuner import read_kernel_tuner
from amk.stores.memory import MemoryStore
from amk.testing import backend_checks, parametrize_with_checks
from tests.tune_helpers import synthetic_time_ms, write_cache

LLAMA_1B = ModelShape(hidden=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, intermediate=8192,
                      vocab=128256)


@pytest.fixture
def cache(tmp_path):
    return write_cache(tmp_path / "A4000.json", device_name="NVIDIA RTX A4000")


@pytest.fixture
def replay(cache):
    records = [i.record for i in read_kernel_tuner(cache)]
    return ReplayBackend.from_records(records), records[0].workload, records[0].device


@parametrize_with_checks(backend_checks(label="replay"))
def test_the_replay_backend_meets_the_backend_contract(check, cache):
    [record, *_] = [i.record for i in read_kernel_tuner(cache)]
    check(make_backend=lambda: ReplayBackend(ReplayBackend.Options(cache=str(cache))), workload=record.workload,
          device=record.device)


@parametrize_with_checks(backend_checks(RooflineBackend, decode_workload("llama-1b", LLAMA_1B), resolve_device("h100"),
                                        label="roofline"))
def test_the_roofline_backend_meets_the_backend_contract(check):
    check()


def test_replay_measures_a_recorded_config_as_its_recorded_median_of_kind_replayed(replay):
    backend, workload, device = replay
    m = backend.measure(workload, device, {"block_size_x": 64, "tile_size_x": 2})
    assert m.verdict is Verdict.PASS and m.kind is MeasurementKind.REPLAYED
    assert m.latency_us == pytest.approx(synthetic_time_ms(64, 2, 1.0, 64) * 1000)


def test_a_config_recorded_several_times_replays_as_its_fastest_pass_else_its_latest_failure(cache):
    import attrs

    from amk.core.records import Measurement

    records = [i.record for i in read_kernel_tuner(cache)]
    passed = next(r for r in records if r.config == {"block_size_x": 64, "tile_size_x": 2})
    failed = next(r for r in records if r.measurement.verdict is Verdict.CRASH)

    def sample(record, verdict, latency_us=None):
        return attrs.evolve(record, measurement=Measurement(verdict=verdict, kind=MeasurementKind.MEASURED,
                                                            latency_us=latency_us, reason="x"))
    again = [sample(passed, Verdict.FAIL), sample(passed, Verdict.PASS, 1.0), sample(passed, Verdict.PASS, 50.0),
             sample(passed, Verdict.PASS, 70.0), sample(passed, Verdict.FAIL)]  # a failed build first and last
    backend = ReplayBackend.from_records(records + again + [sample(failed, Verdict.TIMEOUT)])
    m = backend.measure(passed.workload, passed.device, passed.config)
    assert m.verdict is Verdict.PASS and m.latency_us == 1.0  # best-of, as the stores aggregate (core/store.py)
    late = backend.measure(failed.workload, failed.device, failed.config)
    assert late.verdict is Verdict.TIMEOUT  # no PASS: the latest failure


def test_replay_gives_a_config_absent_from_the_data_a_failed_measurement(replay):
    backend, workload, device = replay
    m = backend.measure(workload, device, {"block_size_x": 48, "tile_size_x": 2})
    assert m.verdict is Verdict.FAIL and m.reason == ABSENT_REASON


def test_replay_replays_a_recorded_failure_with_its_verdict_and_reason(replay):
    backend, workload, device = replay
    m = backend.measure(workload, device, {"block_size_x": 128, "tile_size_x": 3})
    assert m.verdict is Verdict.CRASH and m.reason == "RuntimeFailedConfig"


def test_replay_samples_draw_from_the_recorded_times(cache):
    records = [i.record for i in read_kernel_tuner(cache)]
    backend = ReplayBackend.from_records(records, samples=3, seed=1)
    w, d = records[0].workload, records[0].device
    recorded = {t * 1000 for t in records[0].provenance.extra["entry"]["times"]}
    draws = {backend.measure(w, d, records[0].config).latency_us for _ in range(20)}
    assert draws <= recorded and len(draws) > 1


def test_replay_search_space_is_the_recorded_configs(cache):
    records = [i.record for i in read_kernel_tuner(cache)]
    kept = [r for r in records if r.config != {"block_size_x": 16, "tile_size_x": 1}]
    backend = ReplayBackend.from_records(kept)
    space = backend.search_space(records[0].workload, records[0].device)
    assert space.knob_names == ["block_size_x", "tile_size_x"]
    assert len(list(space)) == 11
    with pytest.raises(InvalidConfigError, match="recorded in the replay data"):
        space.check({"block_size_x": 16, "tile_size_x": 1})


def test_replay_reads_a_cache_file_named_in_its_options_with_the_device_given(tmp_path):
    path = write_cache(tmp_path / "mystery.json.gz", device_name="", problem_size=1000)
    backend = ReplayBackend(ReplayBackend.Options(cache=str(path), device="A6000"))
    workload = Workload("kernel_tuner", "toy_kernel", {"problem_size": 1000})
    m = backend.measure(workload, resolve_device("a6000"), {"block_size_x": 64, "tile_size_x": 2})
    assert m.verdict is Verdict.PASS


def test_replay_names_what_it_holds_when_asked_for_another_target(replay):
    backend, workload, _ = replay
    with pytest.raises(BackendError, match=r'holds: toy_kernel \(\{"problem_size": \[1024, 1024\]\}\) on a4000'):
        backend.search_space(workload, resolve_device("h100"))


def test_roofline_search_space_has_the_seed_knobs_and_schedule_knobs():
    space = RooflineBackend().search_space(decode_workload("llama-1b", LLAMA_1B), resolve_device("h100"))
    assert set(space.knob_names) == {"gemv_n_tile", "threads_per_block", "pipelining_depth", "cols_per_warp",
                                     "cpasync", "cpa_stages", "cpa_cols"}


def test_roofline_treats_cols_per_warp_as_irrelevant_under_cpasync():
    a = {"gemv_n_tile": 64, "threads_per_block": 256, "pipelining_depth": 2, "cols_per_warp": 4, "cpasync": 1,
         "cpa_stages": 4, "cpa_cols": 2}
    assert canonical_knobs(a) == canonical_knobs({**a, "cols_per_warp": 2})
    assert canonical_knobs({**a, "cpasync": 0}) != canonical_knobs({**a, "cpasync": 0, "cols_per_warp": 2})


def test_roofline_predictions_are_marked_predicted_and_never_below_the_floor():
    backend = RooflineBackend()
    workload, device = decode_workload("llama-1b", LLAMA_1B), resolve_device("a4000")
    floor = backend.floor_us(workload, device)
    for config in backend.search_space(workload, device):
        m = backend.measure(workload, device, config)
        assert m.kind is MeasurementKind.PREDICTED and m.bound_us == floor
        assert m.latency_us > floor


def test_roofline_refuses_a_cp_async_ring_larger_than_the_device_shared_memory():
    backend = RooflineBackend()
    workload = decode_workload("llama-1b", LLAMA_1B)
    big = {"gemv_n_tile": 64, "threads_per_block": 512, "pipelining_depth": 2, "cols_per_warp": 1, "cpasync": 1,
           "cpa_stages": 4, "cpa_cols": 4}  # 16 warps x 4 stages x 4 columns x 512 B = 128 KiB
    assert backend.search_space(workload, resolve_device("h100")).is_valid(big)
    with pytest.raises(InvalidConfigError, match="shared memory"):
        backend.validate(workload, resolve_device("a4000"), big)


def test_roofline_configs_round_trip_through_the_schedule_config_layout():
    backend = RooflineBackend()
    workload = decode_workload("llama-1b", LLAMA_1B)
    knobs = {"gemv_n_tile": 32, "threads_per_block": 128, "pipelining_depth": 3, "cols_per_warp": 2, "cpasync": 0,
             "cpa_stages": 4, "cpa_cols": 2}
    record_config = backend.record_config(workload, knobs)
    assert record_config["tiling"]["gemv"]["N_tile"] == 32
    assert record_config["kernel_knobs"]["cols_per_warp"] == 2
    assert backend.knob_config(workload, record_config) == knobs


def test_roofline_names_the_known_devices_for_a_device_without_specs():
    with pytest.raises(BackendError, match="does not know"):
        RooflineBackend().search_space(decode_workload("x", LLAMA_1B), Device("mystery-gpu"))


def test_roofline_refuses_a_workload_that_is_not_a_decode_step():
    with pytest.raises(BackendError, match="use the replay backend"):
        RooflineBackend().floor_us(Workload("kernel_tuner", "conv", {}), resolve_device("h100"))


def test_memory_stores_of_one_shared_name_see_one_corpus():
    from tests.test_tune_loop import toy_record

    a = MemoryStore(MemoryStore.Options(shared_name="test-shared"))
    b = MemoryStore(MemoryStore.Options(shared_name="test-shared"))
    private = MemoryStore()
    a.append([toy_record(1, 10.0)])
    assert b.count() == a.count() >= 1 and private.count() == 0


def test_the_memory_store_opens_from_a_memory_url():
    from amk.core.config import load_config

    config = load_config().with_store_url("memory:named", origin="test")
    store = config.create(Store)
    assert isinstance(store, MemoryStore) and store.describe() == "memory:named"


def test_replay_without_a_cache_or_a_store_says_how_to_give_one_on_the_command_line():
    backend = ReplayBackend(ReplayBackend.Options())
    with pytest.raises(BackendError, match="--backend-option cache=FILE or store=URL"):
        backend.search_space(Workload("kernel_tuner", "k", {}), resolve_device("a100"))
