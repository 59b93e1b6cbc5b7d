import json

import pytest

from amk.core.errors import ValidationError
from amk.decode.schedule import SEARCHABLE_KNOB_CHOICES, SEARCHABLE_KNOB_DEFAULTS, KernelKnobs, ScheduleConfig


def test_knob_choices_and_defaults_are_the_reference_ones():
    assert SEARCHABLE_KNOB_CHOICES == {"cols_per_warp": (1, 2, 4), "cpasync": (0, 1), "cpa_stages": (2, 3, 4),
                                       "cpa_cols": (2, 4)}
    assert SEARCHABLE_KNOB_DEFAULTS == {"cols_per_warp": 1, "cpasync": 1, "cpa_stages": 4, "cpa_cols": 2}
    assert KernelKnobs().to_dict() == SEARCHABLE_KNOB_DEFAULTS


def test_missing_knobs_take_their_defaults():
    assert KernelKnobs.from_dict({"cols_per_warp": 4}).to_dict() == {**SEARCHABLE_KNOB_DEFAULTS, "cols_per_warp": 4}


def test_a_knob_outside_its_choices_is_refused():
    with pytest.raises(ValidationError, match=r"cpa_stages=5 is not one of \[2, 3, 4\]"):
        KernelKnobs(cpa_stages=5)


def test_an_unknown_knob_is_refused_by_name():
    with pytest.raises(ValidationError, match="warp_size"):
        KernelKnobs.from_dict({"warp_size": 32})


def test_schedule_round_trips_through_the_reference_dict_layout():
    cfg = {
        "tiling": {"gemv": {"N_tile": 64}, "attention": {"kv_block": 256}},
        "fusion_grouping": [["gate", "up", "silu"]], "sm_assignment": "round_robin", "pipelining_depth": 3,
        "page_allocation": "linear", "threads_per_block": 512, "smem_bytes_per_block": 49152,
        "kernel_knobs": {"cols_per_warp": 2, "cpasync": 0, "cpa_stages": 3, "cpa_cols": 4},
    }
    schedule = ScheduleConfig.from_dict(cfg)
    assert schedule.gemv_n_tile == 64 and schedule.kernel_knobs.cpa_cols == 4
    assert schedule.to_dict() == cfg
    assert ScheduleConfig.from_dict(schedule.to_dict()) == schedule


def test_explicit_sm_assignment_survives_json():
    schedule = ScheduleConfig(sm_assignment={0: 3, 1: 5})
    again = ScheduleConfig.from_dict(json.loads(json.dumps(schedule.to_dict())))
    assert again.sm_assignment == {0: 3, 1: 5}


def test_every_upstream_schedule_is_a_legal_schedule_config(upstream_corpus):
    for line in upstream_corpus.read_text().splitlines():
        ScheduleConfig.from_dict(json.loads(line)["schedule"], ignore_unknown=True)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("threads_per_block", 100, "threads_per_block=100 must be in \\[32, 1024\\] and a multiple of 32"),
        ("threads_per_block", 2048, "threads_per_block=2048"),
        ("pipelining_depth", 9, "pipelining_depth=9"),
        ("smem_bytes_per_block", -1, "smem_bytes_per_block=-1"),
        ("page_allocation", "random", "page_allocation='random'"),
        ("sm_assignment", "greedy", "sm_assignment='greedy'"),
    ],
)
def test_values_outside_legal_ranges_are_refused_naming_the_field(key, value, message):
    with pytest.raises(ValidationError, match=message):
        ScheduleConfig.from_dict({key: value})


def test_n_tile_must_be_a_power_of_two():
    with pytest.raises(ValidationError, match="gemv_n_tile=48 must be a power of two"):
        ScheduleConfig.from_dict({"tiling": {"gemv": {"N_tile": 48}}})


def test_unknown_schedule_keys_are_refused_unless_asked_to_ignore():
    with pytest.raises(ValidationError, match="dtype"):
        ScheduleConfig.from_dict({"dtype": "bf16"})
    assert ScheduleConfig.from_dict({"dtype": "bf16"}, ignore_unknown=True) == ScheduleConfig()
