"""The ``replay`` ranker: other devices' measurements of the same config, weighted by architecture-first
similarity, optimistic where they disagree, and a learned fallback for configs no device measured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amk.core.errors import ConfigError, NotFittedError
from amk.core.plugins import get_registry
from amk.core.ranker import Ranker
from amk.prior.ranking import make_ranker, rank
from amk.rankers.replay import ReplayRanker
from tests.prior_helpers import grid_configs, kernel, landscape_records, record

WL = kernel()
CONFIGS = grid_configs()


def _corpus(latency_by_device: dict[str, dict[int, float]], fill: float = 10.0) -> list:
    """Every grid config on each device: ``fill`` us except where ``latency_by_device`` says otherwise."""
    return [record(WL, device, c, latency.get(i, fill)) for device, latency in latency_by_device.items()
            for i, c in enumerate(CONFIGS)]


def _prior(records, **options):
    ranker = ReplayRanker(ReplayRanker.Options(**options))
    return make_ranker(records, featurizer="amk", ranker=ranker)


def test_a_config_every_device_measured_scores_the_mean_of_its_log_relative_latency_when_they_agree():
    prior = _prior(_corpus({"a4000": {0: 5.0, 1: 6.0}, "a6000": {0: 5.0, 1: 6.0}}))
    scores = prior.score(WL, "a100", CONFIGS[:3])
    assert scores == pytest.approx([0.0, math.log(6 / 5), math.log(10 / 5)])


def test_where_devices_of_another_architecture_disagree_the_config_best_somewhere_comes_first():
    # Relative to each device's best, config 0 is 1.4x on both sm_86 devices; config 1 is the best on the
    # A4000 and 1.96x on the A6000 (the same mean log; the A6000 weighs a little more for the A100).
    latencies = {"a4000": {0: 7.0, 1: 5.0}, "a6000": {0: 7.0, 1: 9.8, 2: 5.0}}
    optimistic = _prior(_corpus(latencies, fill=20.0))
    neutral = _prior(_corpus(latencies, fill=20.0), optimism=0.0)
    assert rank(CONFIGS[:2], WL, "a100", prior=optimistic) == [CONFIGS[1], CONFIGS[0]]
    neutral_scores = neutral.score(WL, "a100", CONFIGS[:2])
    assert neutral_scores[1] > neutral_scores[0]


def test_a_device_of_the_targets_architecture_speaks_for_it_over_another_architecture():
    # The A4000 (sm_86, like the target A6000) prefers config 0 a little; the A100 (sm_80) prefers config 1
    # more: pooled equally, config 1 would come first.
    prior = _prior(_corpus({"a4000": {0: 5.0, 1: 6.0}, "a100": {0: 8.0, 1: 5.0}}), optimism=0.0)
    assert rank(CONFIGS[:2], WL, "a6000", prior=prior) == [CONFIGS[0], CONFIGS[1]]
    assert rank(CONFIGS[:2], WL, "a100", prior=prior) == [CONFIGS[1], CONFIGS[0]]


def test_a_config_no_device_measured_gets_the_fallback_rankers_prediction():
    prior = _prior(landscape_records(devices=("a100", "a4000")))
    unseen = {"bx": 256, "tile": 2, "shmem": 1}
    X = prior.features(WL, "a6000", [unseen])
    assert prior.score(WL, "a6000", [unseen])[0] == pytest.approx(prior.ranker.fallback_.predict(X)[0])
    assert prior.ranker.fallback_.name == "lightgbm"


def test_the_fallback_ranker_is_an_option():
    prior = _prior(landscape_records(devices=("a100", "a4000")), fallback="knn")
    assert prior.ranker.fallback_.name == "knn"


def test_save_and_load_give_the_same_scores(tmp_path):
    prior = _prior(landscape_records(devices=("a100", "a4000")))
    candidates = [*CONFIGS, {"bx": 256, "tile": 2, "shmem": 1}]
    X = prior.features(WL, "a6000", candidates)
    prior.ranker.save(tmp_path / "replay")
    loaded = ReplayRanker.load(tmp_path / "replay")
    assert np.array_equal(loaded.predict(X), prior.ranker.predict(X))


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError, match="before fit"):
        ReplayRanker().predict(np.zeros((1, 3)))


def test_without_feature_names_every_column_identifies_the_config():
    X = np.asarray([[0.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    ranker = ReplayRanker(ReplayRanker.Options(fallback="knn")).fit(X, np.asarray([0.0, 0.5, 0.2]))
    assert ranker.predict(X[:2]).tolist() == [0.0, 0.5]


@pytest.mark.parametrize("options", [{"optimism": -1.0}, {"optimism": 5}, {"fallback": "replay"}])
def test_bad_options_raise_a_config_error(options):
    with pytest.raises(ConfigError):
        ReplayRanker(ReplayRanker.Options(**options)).fit(np.zeros((2, 1)), np.zeros(2))


def test_replay_is_a_registered_ranker():
    assert get_registry().get(Ranker, "replay").cls is ReplayRanker


def test_a_config_the_target_device_measured_scores_its_own_measurement_alone():
    # The A10G (sm_86, near the A6000) found config 1 best; the A6000 itself measured it 2x its best.
    prior = _prior(_corpus({"a6000": {0: 5.0, 1: 10.0}, "a10g": {0: 9.0, 1: 4.0}}))
    assert prior.score(WL, "a6000", CONFIGS[:2]) == pytest.approx([0.0, math.log(2.0)])
