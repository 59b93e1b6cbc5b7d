"""warm_start and warm_start_combined: the reference behaviours, and its faults fixed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from amk.core.backend import Backend
from amk.core.columns import CorpusColumns
from amk.core.devices import Device
from amk.core.errors import InvalidConfigError, LeftOutWarning
from amk.core.records import MeasurementKind, Verdict
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload
from amk.decode.schedule import SEARCHABLE_KNOB_DEFAULTS, ScheduleConfig
from amk.prior.warm_start import Seed, cold_start_reason, warm_start, warm_start_combined
from tests.prior_helpers import HUGE, SMALL, WIDE, decode, kernel, record, schedule


def test_empty_corpus_is_an_honest_cold_start():
    assert warm_start(kernel(), "a100", []) == []


def test_one_row_gives_one_seed_with_its_origin():
    seeds = warm_start(kernel(), "a100", [record(kernel(), "a100", {"x": 1}, 10.0, source="cache.json#1")])
    assert seeds == [Seed(config={"x": 1}, latency_us=10.0, distance=0.0, workload=kernel(), device="a100",
                          source="cache.json#1", relative=1.0)]


def test_seeds_come_best_first_and_at_most_k():
    records = [record(kernel(), "a100", {"x": i}, lat) for i, lat in enumerate([30.0, 10.0, 20.0, 40.0])]
    seeds = warm_start(kernel(), "a100", records, k=3)
    assert [s.config["x"] for s in seeds] == [1, 2, 0]


def test_a_config_measured_twice_is_seeded_once():
    records = [record(kernel(), "a100", {"x": 1}, 10.0), record(kernel(), "a100", {"x": 1}, 11.0),
               record(kernel(), "a100", {"x": 2}, 12.0)]
    assert [s.config for s in warm_start(kernel(), "a100", records)] == [{"x": 1}, {"x": 2}]


def test_a_config_measured_several_times_ranks_by_its_fastest_pass_as_the_stores_aggregate():
    records = [record(kernel(), "a100", {"x": 1}, lat) for lat in (50.0, 5.0, 52.0)]
    records.append(record(kernel(), "a100", {"x": 2}, 20.0))
    seeds = warm_start(kernel(), "a100", records)
    assert [(s.config, s.latency_us) for s in seeds] == [({"x": 1}, 5.0), ({"x": 2}, 20.0)]  # best-of: core/store.py


def test_a_cold_start_for_a_typod_workload_name_names_the_close_ones():
    records = [record(kernel("matmul_kernel"), "a100", {"x": 1}, 10.0)]
    assert cold_start_reason(kernel("matmul_kernl"), "a100", records).endswith(
        "transfers to kernel_tuner:matmul_kernl (did you mean kernel_tuner:matmul_kernel?)")
    assert "did you mean" not in cold_start_reason(kernel("zzz"), "a100", records)


def test_no_rows_for_another_device_and_no_known_specs_is_a_cold_start():
    records = [record(kernel(), "a100", {"x": 1}, 10.0)]
    assert warm_start(kernel(), Device("mystery-gpu"), records) == []


def test_a_cold_start_says_why_and_what_to_do():
    records = [record(kernel(), "a100", {"x": 1}, 10.0)]
    no_shape = Workload("kernel_tuner", "conv", {})
    assert warm_start(no_shape, "a100", records) == []
    assert "problem_size" in cold_start_reason(no_shape, "a100", records) and "--problem-size" in \
        cold_start_reason(no_shape, "a100", records)
    assert "transfers to kernel_tuner:gemm" in cold_start_reason(kernel("gemm"), "a100", records)
    assert "no passing predicted record" in cold_start_reason(kernel(), "a100", records,
                                                              kinds=(MeasurementKind.PREDICTED,))
    assert "name a known device" in cold_start_reason(kernel(), Device("mystery-gpu"), records)
    assert "no passing measured record" in cold_start_reason(kernel(), "a100", [])


def test_the_same_shape_beats_a_faster_config_of_a_nearby_shape():
    records = [record(decode("wide", WIDE), "h100", schedule(64), 5.0),
               record(decode("small", SMALL), "h100", schedule(128), 50.0)]
    seeds = warm_start(decode("target", SMALL), "h100", records, k=2)
    assert [s.workload.name for s in seeds] == ["small", "wide"]
    assert seeds[0].distance == 0.0 and 0 < seeds[1].distance <= 1.0


def test_shapes_outside_the_radius_are_used_only_when_nothing_is_within_it():
    records = [record(decode("huge", HUGE), "h100", schedule(64), 5.0),
               record(decode("wide", WIDE), "h100", schedule(128), 50.0)]
    within = warm_start(decode("target", SMALL), "h100", records, k=5, shape_radius=1.0)
    assert [s.workload.name for s in within] == ["wide"]
    fallback = warm_start(decode("target", SMALL), "h100", records[:1], k=5, shape_radius=1.0)
    assert [s.workload.name for s in fallback] == ["huge"] and fallback[0].distance > 1.0


def test_shapes_come_from_the_records_not_from_the_model_names():
    # Names that lie about the shape: the original parsed "2048h/4L" out of names and would pick the first.
    records = [record(decode("small(4L/2048h)", HUGE), "h100", schedule(64), 5.0),
               record(decode("unnamed", SMALL), "h100", schedule(128), 50.0)]
    seeds = warm_start(decode("target", SMALL), "h100", records, k=1)
    assert seeds[0].workload.name == "unnamed"


def test_predicted_latencies_do_not_seed_by_default():
    records = [record(kernel(), "a100", {"x": 1}, 1.0, kind=MeasurementKind.PREDICTED),
               record(kernel(), "a100", {"x": 2}, 10.0)]
    assert [s.config for s in warm_start(kernel(), "a100", records)] == [{"x": 2}]
    both = warm_start(kernel(), "a100", records, kinds=(MeasurementKind.MEASURED, MeasurementKind.PREDICTED))
    assert [s.config for s in both] == [{"x": 1}, {"x": 2}]


def test_failed_configs_never_seed():
    records = [record(kernel(), "a100", {"x": 1}, None, verdict=Verdict.CRASH), record(kernel(), "a100", {"x": 2}, 10.0)]
    assert [s.config for s in warm_start(kernel(), "a100", records)] == [{"x": 2}]


def test_kernel_seeds_come_only_from_the_same_kernel():
    records = [record(kernel("other"), "a100", {"x": 1}, 1.0), record(kernel("conv"), "a100", {"x": 2}, 10.0)]
    assert [s.config for s in warm_start(kernel("conv"), "a100", records, k=5)] == [{"x": 2}]


def test_a_kernel_of_another_problem_size_seeds_when_there_is_no_same_size():
    records = [record(kernel("conv", [2048, 2048]), "a100", {"x": 1}, 1.0)]
    seeds = warm_start(kernel("conv", [4096, 4096]), "a100", records)
    assert [s.config for s in seeds] == [{"x": 1}] and seeds[0].distance > 0


def test_no_data_for_a_device_transfers_from_the_most_similar_device_by_specs():
    records = [record(kernel(), "t4", {"x": 1}, 1.0), record(kernel(), "h100", {"x": 2}, 10.0)]
    seeds = warm_start(kernel(), "h200", records, k=1)
    assert [(s.device, s.config) for s in seeds] == [("h100", {"x": 2})]


def test_a_device_with_its_own_data_never_takes_seeds_from_others():
    records = [record(kernel(), "h200", {"x": 1}, 50.0), record(kernel(), "h100", {"x": 2}, 1.0)]
    assert [s.device for s in warm_start(kernel(), "h200", records, k=5)] == ["h200"]


def test_a_device_string_resolves_to_the_corpus_name():
    records = [record(kernel(), "a100", {"x": 1}, 10.0)]
    assert len(warm_start(kernel(), "NVIDIA A100-PCIE-40GB", records)) == 1


class _EvenOnlyBackend(Backend):
    name = "even-only"

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        return SearchSpace([Knob("x", (0, 2, 4, 6))])

    def measure(self, workload, device, config: Mapping[str, Any]):
        raise NotImplementedError


def test_seeds_the_backend_would_refuse_are_not_handed_out_and_their_count_is_said():
    records = [record(kernel(), "a100", {"x": x}, 10.0 + x) for x in range(5)]
    with pytest.warns(LeftOutWarning, match="2 corpus config.s. left out because the even-only backend refuses"):
        seeds = warm_start(kernel(), "a100", records, k=3, backend=_EvenOnlyBackend())
    assert [s.config["x"] for s in seeds] == [0, 2, 4]
    with pytest.raises(InvalidConfigError):
        _EvenOnlyBackend().validate(kernel(), Device("a100"), {"x": 1})


def test_warm_start_reads_columns_a_store_would_give():
    records = [record(kernel(), "a100", {"x": 1}, 10.0, source="f#1")]
    assert warm_start(kernel(), "a100", CorpusColumns.from_records(records))[0].source == "f#1"


def test_combined_seeds_are_schedule_and_knob_pairs_best_first():
    records = [record(decode("m"), "h100", schedule(64, cols_per_warp=2), 20.0),
               record(decode("m"), "h100", schedule(128, cols_per_warp=4), 10.0)]
    pairs = warm_start_combined(SMALL, "h100", records)
    assert [(s.gemv_n_tile, k["cols_per_warp"]) for s, k in pairs] == [(128, 4), (64, 2)]
    assert all(isinstance(s, ScheduleConfig) for s, _ in pairs)


def test_combined_seed_without_kernel_knobs_gets_the_knob_defaults():
    pairs = warm_start_combined(SMALL, "h100", [record(decode("m"), "h100", schedule(64, cols_per_warp=None), 10.0)])
    assert pairs[0][1] == SEARCHABLE_KNOB_DEFAULTS


def test_combined_skips_schedules_that_are_not_valid_configs_and_says_how_many():
    records = [record(decode("m"), "h100", schedule(63), 5.0), record(decode("m"), "h100", schedule(64), 10.0)]
    with pytest.warns(LeftOutWarning, match="1 corpus schedule.s. left out because they are not valid"):
        pairs = warm_start_combined(SMALL, "h100", records)
    assert [s.gemv_n_tile for s, _ in pairs] == [64]


def test_combined_dedups_configs_that_only_spell_the_defaults_differently():
    records = [record(decode("m"), "h100", schedule(64, cols_per_warp=None), 10.0),
               record(decode("m"), "h100", schedule(64, cols_per_warp=1), 11.0)]
    assert len(warm_start_combined(SMALL, "h100", records)) == 1


def test_upstream_corpus_warm_starts_its_measured_shape(upstream_corpus):
    from amk.formats import read_file

    records = [item.record for item in read_file(upstream_corpus) if item.record is not None]
    pairs = warm_start_combined(SMALL, "rtx5090", records, k=3)
    assert 1 <= len(pairs) <= 3


def test_a_real_kernel_tuner_cache_warm_starts_its_fastest_config(shared_data):
    from amk.formats import read_file

    path = shared_data / "kernel_tuner" / "convolution" / "A4000.json.gz"
    if not path.is_file():
        pytest.skip(f"needs the Kernel Tuner cache {path}, which is absent")
    records = [item.record for item in read_file(path) if item.record is not None]
    fastest = min(r.measurement.latency_us for r in records if r.measurement.verdict is Verdict.PASS)
    seeds = warm_start(records[0].workload, "NVIDIA RTX A4000", records, k=3)
    assert seeds[0].latency_us == fastest and seeds[0].device == "a4000"
    assert seeds[0].latency_us <= seeds[1].latency_us <= seeds[2].latency_us


def test_asking_for_no_seeds_gives_none():
    assert warm_start(kernel(), "a100", [record(kernel(), "a100", {"x": 1}, 10.0)], k=0) == []


def test_no_data_for_a_device_transfers_from_its_own_architecture_before_a_device_of_nearer_memory_size():
    # The A6000 (sm_86, 48 GB) is nearer the A100 (sm_80, 40 GB) in memory size; the A4000 shares its
    # architecture. Knowledge transfers within an architecture, so the A4000's seeds come first.
    records = [record(kernel(), "a100", {"x": 1}, 1.0), record(kernel(), "a4000", {"x": 2}, 1.0)]
    seeds = warm_start(kernel(), "a6000", records, k=2)
    assert [s.device for s in seeds] == ["a4000", "a100"]


def test_device_distance_puts_every_device_of_the_same_architecture_before_any_other_architecture():
    from amk.core.devices import KNOWN_DEVICES
    from amk.prior.distance import device_distance

    devices = list(KNOWN_DEVICES.values())
    for target in devices:
        distance = device_distance(target, devices)
        same = [d.arch == target.arch for d in devices]
        assert max(x for x, s in zip(distance, same) if s) < min(x for x, s in zip(distance, same) if not s), target


def test_device_distance_weighs_memory_size_far_less_than_bandwidth():
    from amk.prior.distance import device_distance

    target = Device("t", "sm_90", 100, 1000.0, 100_000, 40.0)
    more_memory = Device("m", "sm_90", 100, 1000.0, 100_000, 80.0)
    more_bandwidth = Device("b", "sm_90", 100, 2000.0, 100_000, 40.0)
    near_memory, near_bandwidth = device_distance(target, [more_memory, more_bandwidth])
    assert 0 < near_memory < near_bandwidth / 2


def test_device_distance_is_infinite_without_a_spec_known_on_both_sides():
    from amk.prior.distance import device_distance

    assert device_distance(Device("unknown"), [Device("a100", "sm_80", 108)]).tolist() == [float("inf")]
