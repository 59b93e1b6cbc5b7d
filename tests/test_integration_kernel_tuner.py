"""amk inside Kernel Tuner, replaying caches: AmkStrategy and RecordingStrategy under ``tune_cache``.

Kernel Tuner itself runs here (simulation mode needs no GPU); the caches are tiny ones written by the
test (``tests/tune_helpers.write_cache``: 12 configs, one recorded failure).
"""

from __future__ import annotations

import pytest

from amk.core.columns import config_key
from amk.core.errors import ConfigError
from amk.formats.kernel_tuner import read_kernel_tuner
from amk.integrations.kernel_tuner import AmkStrategy, RecordingStrategy
from amk.integrations.kernel_tuner.compat import simulate_cache
from tests.kernel_tuner_helpers import config_of, stored, with_timings
from tests.tune_helpers import write_cache

pytest_plugins = ["kernel_tuner_fixtures"]


@pytest.fixture
def store_url(tmp_path):
    return f"jsonl:{tmp_path / 'corpus.jsonl'}"


def _import(url: str, path) -> None:
    from amk.core.config import open_store

    with open_store(url) as store:
        store.append([item.record for item in read_kernel_tuner(path) if item.record is not None])


def _distinct(results) -> list[dict]:
    seen, out = set(), []
    for r in results:
        key = config_key(config_of(r))
        if key not in seen:
            seen.add(key)
            out.append(config_of(r))
    return out


@pytest.mark.parametrize("problem_size", [1000, (1024, 1024)], ids=["integer", "list"])
def test_a_replay_records_every_evaluated_point_as_replayed_under_the_names_the_importer_gives(
        kernel_tuner, tmp_path, store_url, problem_size):
    cache = write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000", problem_size=problem_size)
    strategy = AmkStrategy(store=store_url)
    results, _ = simulate_cache(cache, strategy=strategy, strategy_options={"max_fevals": 5}, quiet=True)
    records = stored(store_url)
    imported = next(item.record for item in read_kernel_tuner(cache) if item.record is not None)
    assert len(results) == 5 and len(records) == 5
    assert [r.config for r in records] == [config_of(r) for r in results]
    assert {r.measurement.kind.value for r in records} == {"replayed"}
    assert {(r.workload, r.device) for r in records} == {(imported.workload, imported.device)}
    assert "budget" in strategy.last_run.stop_reason and strategy.last_run.evaluations == 5


def test_with_a_corpus_of_another_device_the_first_evaluation_is_that_devices_best(kernel_tuner, tmp_path,
                                                                                     store_url):
    _import(store_url, write_cache(tmp_path / "a4000.json", device_name="NVIDIA RTX A4000", best_block=128))
    cache = write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000", best_block=128)
    strategy = AmkStrategy(store=store_url)
    results, _ = simulate_cache(cache, strategy=strategy, strategy_options={"max_fevals": 3}, quiet=True)
    assert config_of(results[0]) == {"block_size_x": 128, "tile_size_x": 2}
    assert "a4000" in strategy.last_run.warm_start[0]


def test_kernel_tuners_restrictions_bound_the_search_and_an_exhausted_space_ends_it(kernel_tuner, tmp_path,
                                                                                   store_url):
    cache = write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000")
    strategy = AmkStrategy(store=store_url)
    results, _ = simulate_cache(cache, strategy=strategy, restrictions=["block_size_x >= 64"],
                                strategy_options={"max_fevals": 100}, quiet=True)
    # 64 and 128 with tiles 1..3, less the recorded failure (128, 3) that tune_cache leaves out.
    assert sorted(map(config_key, _distinct(results))) == sorted(
        config_key({"block_size_x": b, "tile_size_x": t}) for b in (64, 128) for t in (1, 2, 3) if (b, t) != (128, 3))
    assert len(stored(store_url)) == 5


def test_a_time_limit_stops_the_run_and_every_evaluated_point_is_recorded(kernel_tuner, tmp_path, store_url):
    cache = with_timings(write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000"), compile_ms=10_000)
    strategy = AmkStrategy(store=store_url)
    results, _ = simulate_cache(cache, strategy=strategy, strategy_options={"time_limit": 35}, quiet=True)
    assert 1 <= len(_distinct(results)) <= 4  # 10 s of simulated time each, plus this process's own time
    assert len(stored(store_url)) == len(_distinct(results))
    assert "time" in strategy.last_run.stop_reason


def test_a_run_killed_midway_keeps_every_point_it_measured_before(kernel_tuner, tmp_path, store_url,
                                                                  monkeypatch):
    from kernel_tuner.runners.simulation import SimulationRunner

    real_run = SimulationRunner.run
    calls = []

    def run_then_die(self, parameter_space, tuning_options):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a Ctrl-C or a kill lands in the fourth evaluation
        return real_run(self, parameter_space, tuning_options)

    monkeypatch.setattr(SimulationRunner, "run", run_then_die)
    cache = write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000")
    with pytest.raises(KeyboardInterrupt):
        simulate_cache(cache, strategy=AmkStrategy(store=store_url), strategy_options={"max_fevals": 8}, quiet=True)
    assert len(stored(store_url)) == 3


def test_the_recorder_records_each_config_a_kernel_tuner_strategy_evaluates_once(kernel_tuner, tmp_path,
                                                                                  store_url):
    cache = write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000")
    strategy = RecordingStrategy("genetic_algorithm", store=store_url)
    results, _ = simulate_cache(cache, strategy=strategy, strategy_options={"max_fevals": 8}, quiet=True)
    records = stored(store_url)
    assert [r.config for r in records] == _distinct(results)
    assert {r.measurement.kind.value for r in records} == {"replayed"}
    assert {r.provenance.extra["strategy"] for r in records} == {"genetic_algorithm"}


def test_a_strategy_kernel_tuner_does_not_have_is_named_with_those_it_has(kernel_tuner, tmp_path, store_url):
    cache = write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000")
    with pytest.raises(ConfigError, match="no strategy 'diff_evolution'.*diff_evo"):
        simulate_cache(cache, strategy=RecordingStrategy("diff_evolution", store=store_url), quiet=True)


def test_a_replayed_cache_without_a_device_name_needs_one(kernel_tuner, tmp_path, store_url):
    cache = write_cache(tmp_path / "mystery.json", device_name="")
    with pytest.raises(ConfigError, match="device_name is empty; pass device=NAME"):
        simulate_cache(cache, strategy=AmkStrategy(store=store_url), quiet=True)
    simulate_cache(cache, strategy=AmkStrategy(store=store_url, device="mystery-gpu"),
                   strategy_options={"max_fevals": 2}, quiet=True)
    assert {r.device.name for r in stored(store_url)} == {"mystery-gpu"}


def test_settings_kernel_tuner_owns_are_refused_with_what_to_use_instead():
    with pytest.raises(ConfigError, match="'budget' .*max_fevals"):
        AmkStrategy(budget=5)
    with pytest.raises(ConfigError, match=r"unknown \[tune\] setting\(s\) \['polcy'\]"):
        AmkStrategy(polcy="prior")


# -- the harness shared by bench/kernel_tuner_strategies.py and amk simulate ----------------------------
def test_a_seed_reproduces_a_kernel_tuner_strategy_and_another_seed_changes_it(kernel_tuner, shared_data):
    from amk.integrations.kernel_tuner.harness import ReplayedCache, run_strategy

    cache = ReplayedCache.read(shared_data / "kernel_tuner" / "pnpoly" / "RTX_3090.json.gz")
    first, again, other = (run_strategy(cache, "diff_evo", seed=s, budget=30) for s in (0, 0, 1))
    assert first.error is None and len(first.visited) == 30
    assert again.visited == first.visited  # diff_evo's first population is a seeded Latin hypercube
    assert other.visited != first.visited


def test_simulate_runs_kernel_tuners_strategies_as_baselines_and_scores_every_row(kernel_tuner, tmp_path):
    from amk.core.errors import AmkError
    from amk.simulate import simulate

    folder = tmp_path / "caches"
    folder.mkdir()
    write_cache(folder / "A4000.json", device_name="NVIDIA RTX A4000", best_block=32)
    write_cache(folder / "A6000.json.gz", device_name="NVIDIA RTX A6000", best_block=32, device_factor=0.7)
    rows = simulate(folder, budget=12, seeds=2, strategies=["amk", "random", "kt:random_sample"])
    kt = [r for r in rows if r.strategy == "kt:random_sample"]
    assert len(kt) == 2 and all(len(r.per_seed_5pct) == 2 and r.evals_to_5pct is not None for r in kt)
    assert all(r.score == 0.0 for r in rows if r.strategy == "random")
    assert all(r.score is not None for r in rows)
    with pytest.raises(AmkError, match=r"unknown strategies \['kt:no_such'\].*kt:diff_evo"):
        simulate(folder, budget=12, seeds=1, strategies=["kt:no_such"])


def test_a_benchmark_run_can_end_once_a_config_within_a_limit_was_evaluated(kernel_tuner, tmp_path):
    from amk.integrations.kernel_tuner import compat
    from amk.integrations.kernel_tuner.harness import ReplayedCache, run_strategy
    from amk.stores.memory import MemoryStore

    if compat.version_tuple() < (1, 4):
        pytest.skip("ending a replay within a limit needs kernel_tuner >= 1.4 (its budget object)")
    cache = ReplayedCache.read(write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000"))
    whole = run_strategy(cache, AmkStrategy(store=MemoryStore()), seed=0, budget=50)
    limit = sorted(v["time"] for v in whole.visited)[1]  # the second best: not the last one evaluated
    run = run_strategy(cache, AmkStrategy(store=MemoryStore()), seed=0, budget=50, stop_within_ms=limit)
    assert len(whole.visited) == len(cache.valid_ms)
    assert run.error is None and run.visited == whole.visited[:whole.evaluations_to(limit)]
    assert len(run.visited) < len(whole.visited)


def test_a_live_run_names_its_problem_size_as_the_importer_does():
    from amk.formats.values import problem_size
    from amk.integrations.kernel_tuner.naming import written_problem_size

    for given in ([4096.0, 4096.0], (64, 64), 4096, [[1, 2], [3]]):
        assert written_problem_size(given) == problem_size(list(given) if isinstance(given, tuple) else given)
    assert written_problem_size([4096.0, 4096.0]) == [4096, 4096]


def test_an_unknown_strategy_name_in_the_harness_is_one_clear_error(kernel_tuner, tmp_path):
    from amk.integrations.kernel_tuner.harness import ReplayedCache, run_strategy

    cache = ReplayedCache.read(write_cache(tmp_path / "a6000.json", device_name="NVIDIA RTX A6000"))
    run = run_strategy(cache, "diff_evoo", seed=0, budget=5, stop_within_ms=1.0)  # the harness wraps it
    assert run.error is not None and "has no strategy 'diff_evoo'" in run.error and "diff_evo" in run.error
