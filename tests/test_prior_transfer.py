"""Transfer sources: what other devices measured of the same kernel, knobs matched by name, and the
zero-shot order they give."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from amk.core.columns import CorpusColumns
from amk.core.devices import Device, resolve_device
from amk.core.records import Verdict
from amk.prior.evaluation import pooled_replay_scores
from amk.prior.training import load_points
from amk.prior.transfer import FAILURE_PENALTY, transfer_sources, zero_shot
from tests.prior_helpers import kernel, record

TARGET = Device("target-gpu")


def columns(*records) -> CorpusColumns:
    return CorpusColumns.from_records(records)


def test_a_knob_only_the_old_version_had_makes_one_source_per_setting():
    old = [record(kernel(), "a100", {"bx": bx, "shmem": s}, 10.0 * bx + s) for bx in (16, 32) for s in (0, 1)]
    sources = transfer_sources(columns(*old), kernel(), TARGET, [{"bx": 16}, {"bx": 32}])
    assert sources.names == ["a100[shmem=0]", "a100[shmem=1]"]
    assert sources.shared_knobs == ("bx",) and sources.source_only_knobs == ("shmem",)
    assert sources.log_relative[:, 0] == pytest.approx([0.0, math.log(2)])
    assert sources.log_relative[:, 1] == pytest.approx([0.0, math.log(321 / 161)])


def test_knob_values_match_by_value_not_by_their_spelling():
    old = [record(kernel(), "a100", {"bx": 2.0, "ro": True}, 5.0), record(kernel(), "a100", {"bx": 4.0, "ro": True}, 10.0)]
    sources = transfer_sources(columns(*old), kernel(), TARGET, [{"bx": 2, "ro": 1}, {"bx": 4, "ro": 1}])
    assert sources.log_relative[:, 0] == pytest.approx([0.0, math.log(2)])
    assert sources.known_exactly().all()


def test_a_number_the_old_space_lacked_takes_the_nearest_it_measured_and_is_not_exact():
    old = [record(kernel(), "a100", {"tile": t}, 10.0 / t) for t in (1, 2, 3, 4)]
    sources = transfer_sources(columns(*old), kernel(), TARGET, [{"tile": 4}, {"tile": 7}, {"tile": 1}])
    assert sources.log_relative[:, 0] == pytest.approx([0.0, 0.0, math.log(4)])
    assert sources.known_exactly()[:, 0].tolist() == [True, False, True]


def test_a_value_that_is_not_a_number_and_was_not_measured_is_unknown():
    old = [record(kernel(), "a100", {"algo": "a"}, 10.0), record(kernel(), "a100", {"algo": "b"}, 20.0)]
    sources = transfer_sources(columns(*old), kernel(), TARGET, [{"algo": "a"}, {"algo": "c"}])
    assert sources.log_relative[0, 0] == 0.0 and math.isnan(sources.log_relative[1, 0])


def test_a_knob_only_the_new_version_has_leaves_its_settings_to_the_tune_loop():
    old = [record(kernel(), "a100", {"bx": 16}, 10.0), record(kernel(), "a100", {"bx": 32}, 20.0)]
    candidates = [{"bx": bx, "unroll": u} for bx in (16, 32) for u in (0, 1)]
    sources = transfer_sources(columns(*old), kernel(), TARGET, candidates)
    assert sources.target_only_knobs == ("unroll",)
    assert sources.log_relative[:, 0] == pytest.approx([0.0, 0.0, math.log(2), math.log(2)])


def test_a_recorded_failure_counts_as_worse_than_the_worst_pass_and_the_own_device_is_no_source():
    old = [record(kernel(), "a100", {"x": 1}, 10.0), record(kernel(), "a100", {"x": 2}, 20.0),
           record(kernel(), "a100", {"x": 3}, None, verdict=Verdict.FAIL),
           record(kernel(), "target-gpu", {"x": 1}, 99.0)]
    sources = transfer_sources(columns(*old), kernel(), TARGET, [{"x": 1}, {"x": 2}, {"x": 3}])
    assert sources.devices == ["a100"]
    assert sources.failed[:, 0].tolist() == [False, False, True]
    assert sources.filled()[:, 0] == pytest.approx([0.0, math.log(2), math.log(2) + FAILURE_PENALTY])


def test_other_workloads_and_other_kernels_are_no_source():
    old = [record(kernel("conv", [1024, 1024]), "a100", {"x": 1}, 10.0), record(kernel("gemm"), "a100", {"x": 1}, 1.0)]
    assert len(transfer_sources(columns(*old), kernel(), TARGET, [{"x": 1}])) == 0


def test_with_equal_weights_the_zero_shot_order_is_pooled_replay():
    rng = np.random.default_rng(3)
    configs = [{"bx": bx, "tile": t} for bx, t in itertools.product((16, 32, 64, 128), (1, 2, 3, 4))]
    records = [record(kernel(), device, c, float(rng.uniform(1, 10)))
               for device in ("a100", "a4000", "a6000") for c in configs]
    corpus = columns(*records)
    z = zero_shot(transfer_sources(corpus, kernel(), TARGET, configs))
    training = load_points(corpus)
    index = {repr(c): i for i, c in enumerate(training.columns.configs)}
    pooled = pooled_replay_scores(training, np.asarray([index[repr(c)] for c in configs]))
    assert z.order().tolist() == np.argsort(pooled, kind="stable").tolist()
    assert "equal weights" in z.description


def test_the_zero_shot_order_weighs_a_device_of_the_target_architecture_more():
    configs = [{"x": x} for x in range(8)]
    records = ([record(kernel(), "a100", c, 10.0 + abs(c["x"] - 1)) for c in configs]
               + [record(kernel(), "a4000", c, 10.0 + abs(c["x"] - 5)) for c in configs])
    from amk.prior.similarity import device_similarity

    corpus = columns(*records)
    target = resolve_device("a6000")
    similarity = device_similarity(corpus, target, [resolve_device("a100"), resolve_device("a4000")], exclude=kernel())
    z = zero_shot(transfer_sources(corpus, kernel(), target, configs), similarity)
    assert z.order()[0] == 5


def test_configs_measured_as_is_come_before_those_known_by_their_nearest_values_and_the_unknown_last():
    old = [record(kernel(), "a100", {"tile": t, "algo": "a"}, 10.0 / t) for t in (1, 2, 3, 4)]
    candidates = [{"tile": 7, "algo": "a"}, {"tile": 4, "algo": "a"}, {"tile": 1, "algo": "b"}, {"tile": 1, "algo": "a"}]
    z = zero_shot(transfer_sources(columns(*old), kernel(), TARGET, candidates))
    assert z.order().tolist() == [1, 3, 0, 2]
    np.testing.assert_array_equal(z.positions(), [2.0, 0.0, np.nan, 1.0])


def test_a_device_of_unknown_similarity_weighs_the_mean_known_weight_not_nothing():
    from amk.prior.similarity import Similarity

    configs = [{"x": x} for x in range(8)]
    records = ([record(kernel(), "a", c, 10.0 + abs(c["x"] - 1)) for c in configs]
               + [record(kernel(), "b", c, 10.0 + 0.9 * abs(c["x"] - 1)) for c in configs]
               + [record(kernel(), "new-vendor-gpu", c, 10.0 + 4 * abs(c["x"] - 6)) for c in configs])
    sources = transfer_sources(columns(*records), kernel(), TARGET, configs)
    z = zero_shot(sources, [Similarity("a", 0.2, "specs"), Similarity("b", 0.2, "specs"),
                            Similarity("new-vendor-gpu", math.nan, "unknown")])
    assert z.order()[0] == 6  # at the mean weight its strong opinion counts as much as each of the others'
    unlike = zero_shot(sources, [Similarity("a", 0.2, "specs"), Similarity("b", 0.2, "specs"),
                                 Similarity("new-vendor-gpu", 0.0, "specs")])
    assert unlike.order()[0] == 1  # known to be unlike: weighed 0
    assert "unknown: the mean weight" in z.description
