"""The Optuna bridge: a study warm-started from the corpus, every finished trial recorded with its verdict,
and categorical choices that changed between studies said, not crashed on or dropped in silence."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

from amk.core.errors import LeftOutWarning, ValidationError, WrongAnswerError
from amk.core.records import Verdict
from amk.stores.jsonl import JsonlStore

optuna = pytest.importorskip("optuna", reason="the Optuna bridge needs optuna (pip install 'amk[optuna]')")
amk_optuna = pytest.importorskip("amk.integrations.optuna")
optuna.logging.set_verbosity(optuna.logging.ERROR)

DATA = np.random.default_rng(0).random(1 << 14)
SPACE = {"block": [16, 64, 256, 1024, 4096], "passes": [16, 4, 1]}  # the fastest config last, 4x apart
TARGET = {"workload": "blocksum:demo", "shape": {"n": DATA.size}, "device": "cpu-test"}


def blocked_sum(trial) -> float:
    """Sums DATA ``passes`` times in slices of ``block``: the best of three timings, in ms."""
    config = amk_optuna.suggest(trial, SPACE)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(config["passes"]):
            for i in range(0, DATA.size, config["block"]):
                DATA[i:i + config["block"]].sum()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with JsonlStore(JsonlStore.Options(path=str(tmp_path / "corpus.jsonl"))) as opened:
        yield opened


def _run(store, n_trials: int, seed: int, objective=blocked_sum, space=SPACE, **optimize):
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    started = amk_optuna.warm_start(study, store, distributions=space, **TARGET)
    record = amk_optuna.RecordTrials(store, **TARGET)
    study.optimize(objective, n_trials=n_trials, callbacks=[record], **optimize)
    run = [t for t in study.trials if not t.user_attrs.get("amk_source", "").startswith("amk corpus")]
    return study, started, record, run


def _first_trial_of(trials, params) -> int | None:
    return next((i + 1 for i, t in enumerate(trials) if t.params == params), None)


def test_a_second_study_reaches_the_first_studys_best_in_fewer_trials(store):
    first, started, record, run = _run(store, n_trials=12, seed=1)
    assert started.added == 0 and len(record.records) == 12
    best = first.best_params
    _, started, _, rerun = _run(store, n_trials=3, seed=2)
    assert started.added == len({tuple(t.params.items()) for t in run})  # one completed trial per config
    assert started.enqueued[0] == best and started.enqueue_sources[0].startswith("amk warm start")
    assert _first_trial_of(rerun, best) < _first_trial_of(run, best)


def test_every_finished_trial_is_recorded_with_its_verdict(store):
    def objective(trial):
        x = trial.suggest_categorical("x", [1, 2, 3, 4, 5])
        if x == 1:
            raise RuntimeError("illegal memory access")
        if x == 2:
            raise WrongAnswerError("max error 0.25")
        if x == 3:
            trial.report(9.0, step=4)
            raise optuna.TrialPruned()
        return 0.5 * x

    study = optuna.create_study(direction="minimize")
    record = amk_optuna.RecordTrials(store, **TARGET)
    for x in [1, 2, 3, 4, 5]:
        study.enqueue_trial({"x": x})
    study.optimize(amk_optuna.with_verdicts(objective), n_trials=5, callbacks=[record], catch=(Exception,))
    by_x = {r.config["x"]: r.measurement for r in store.query()}
    assert by_x[1].verdict is Verdict.CRASH and by_x[1].reason == "RuntimeError: illegal memory access"
    assert by_x[2].verdict is Verdict.FAIL and by_x[2].reason == "wrong answer: max error 0.25"
    assert by_x[3].verdict is Verdict.REJECTED and "pruned" in by_x[3].reason and "step 4" in by_x[3].reason
    assert by_x[4].verdict is Verdict.PASS and by_x[4].latency_us == 2000.0  # 2 ms
    assert len(record.records) == 5 and {r.provenance.backend for r in record.records} == {"optuna"}


def test_a_failed_trial_without_the_wrapper_is_a_crash_that_says_how_to_learn_why(store):
    study = optuna.create_study(direction="minimize")
    record = amk_optuna.RecordTrials(store, **TARGET)
    study.optimize(lambda trial: trial.suggest_categorical("x", [1]) and float("nan"), n_trials=1,
                   callbacks=[record])
    (measurement,) = [r.measurement for r in store.query()]
    assert measurement.verdict is Verdict.CRASH and "with_verdicts" in measurement.reason


@pytest.mark.parametrize("value", [float("nan"), None, 0.0, np.float32(-1.0), math.inf])
def test_a_wrapped_objective_that_returns_no_latency_fails_its_trial_saying_what_came_back(store, value):
    def objective(trial):
        return value if trial.suggest_categorical("x", [1, 2]) == 1 else np.float32(2.0)  # numpy's: a latency

    study = optuna.create_study(direction="minimize")
    record = amk_optuna.RecordTrials(store, **TARGET)
    for x in [1, 2]:
        study.enqueue_trial({"x": x})
    study.optimize(amk_optuna.with_verdicts(objective), n_trials=2, callbacks=[record], catch=(Exception,))
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]  # never the study's best
    assert study.best_params == {"x": 2}
    by_x = {r.config["x"]: r.measurement for r in store.query()}
    assert by_x[1].verdict is Verdict.CRASH and by_x[1].reason == (
        f"the objective returned {value!r}; a latency is a positive finite number (in ms)")
    assert by_x[2].verdict is Verdict.PASS and by_x[2].latency_us == 2000.0


def test_choices_that_changed_between_studies_leave_out_the_configs_they_lack_and_say_which(store):
    earlier = optuna.create_study(direction="minimize")
    for block in (16, 32, 64):
        earlier.enqueue_trial({"block": block})
    earlier.optimize(lambda t: 1.0 + t.suggest_categorical("block", [16, 32, 64]), n_trials=3,
                     callbacks=[amk_optuna.RecordTrials(store, **TARGET)])
    study = optuna.create_study(direction="minimize")
    with pytest.warns(LeftOutWarning, match=r"knob 'block' has \[16\] in the corpus, not among the choices \[32, 64, 128\]"):
        started = amk_optuna.warm_start(study, store, distributions={"block": [32, 64, 128]}, **TARGET)
    assert started.outside_choices == {"block": [16]} and started.left_out == {
        "a value outside the study's distributions": 1}
    assert sorted(t.params["block"] for t in study.trials if t.state.name == "COMPLETE") == [32, 64]
    study.optimize(lambda t: 1.0 + amk_optuna.suggest(t, {"block": [32, 64, 128]})["block"], n_trials=2)


def test_new_choices_for_a_study_that_has_trials_are_refused_naming_the_knob_and_values(store):
    study = optuna.create_study(direction="minimize")
    study.optimize(lambda t: float(t.suggest_categorical("block", [16, 32])), n_trials=1)
    with pytest.raises(ValidationError, match=r"knob 'block' has the choices \[16, 32\].*added \[64\], removed \[16\]"):
        amk_optuna.warm_start(study, store, distributions={"block": [32, 64]}, **TARGET)


def test_a_study_that_maximizes_is_refused():
    study = optuna.create_study(direction="maximize")
    with pytest.raises(ValidationError, match="must minimize"):
        amk_optuna.warm_start(study, "jsonl:unused.jsonl", distributions=SPACE, **TARGET)


def test_an_empty_corpus_enqueues_nothing_not_each_knobs_first_choice(store):
    study = optuna.create_study(direction="minimize")
    started = amk_optuna.warm_start(study, store, distributions=SPACE, **TARGET)
    assert (started.added, started.enqueued) == (0, []) and study.get_trials() == []


def test_int_and_float_distributions_warm_start_from_recorded_values(store):
    space = {"tile": optuna.distributions.IntDistribution(1, 64, log=True),
             "alpha": optuna.distributions.FloatDistribution(0.0, 1.0)}
    objective = lambda t: 1.0 + abs(math.log2(amk_optuna.suggest(t, space)["tile"]) - 4) + t.params["alpha"]
    with pytest.warns(LeftOutWarning, match="nothing enqueued"):  # a cold start over a space with no finite grid
        _run(store, n_trials=6, seed=4, objective=objective, space=space)
    study = optuna.create_study(direction="minimize")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeftOutWarning)
        started = amk_optuna.warm_start(study, store, distributions=space, **TARGET)
    assert started.added == 6 and started.enqueued  # candidates: the recorded values, as the space is not finite
