"""``amk.tune(objective, space)``: amk's loop over a Python function, its records, warm start and resume."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

import amk
from amk.core.errors import ConfigError, ValidationError, WrongAnswerError
from amk.stores.jsonl import JsonlStore
from tests.conftest import amk_env

DATA = np.random.default_rng(0).random(1 << 14)
SPACE = {"block": [16, 64, 256, 1024, 4096], "passes": [16, 4, 1]}  # the fastest config comes last, 4x apart


def blocked_sum(config: dict) -> float:
    """Sums DATA ``passes`` times in slices of ``block``; the best of three timings, in seconds."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        total = 0.0
        for _ in range(config["passes"]):
            for i in range(0, DATA.size, config["block"]):
                total += DATA[i:i + config["block"]].sum()
        best = min(best, time.perf_counter() - start)
    assert abs(total - config["passes"] * DATA.sum()) < 1e-6 * DATA.size
    return best


def constant(config: dict, value: float = 1.0) -> float:
    return value


class Constant:
    def __call__(self, config: dict) -> float:
        return 1.0


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config file of the caller's; state files under tmp_path/.amk
    return f"jsonl:{tmp_path / 'corpus.jsonl'}"


def test_a_second_run_reaches_the_first_runs_best_config_in_fewer_evaluations(corpus):
    first = amk.tune(blocked_sum, SPACE, unit="s", budget=15, store=corpus)
    assert first.evaluations == 15 and first.verdicts == {"PASS": 15}
    assert first.best_config == {"block": 4096, "passes": 1}
    second = amk.tune(blocked_sum, SPACE, unit="s", budget=3, store=corpus)
    run = first.report["run_id"]
    assert second.warm_start and all(f"amk tune {run} " in source for source in second.warm_start)
    reached = second.evaluation_of(first.best_config)
    assert reached is not None and reached < first.evaluation_of(first.best_config)
    assert second.workload.name.endswith("test_tune_api.blocked_sum") and second.workload.kind == "python"


def test_every_evaluation_is_recorded_with_its_verdict_failures_included(corpus, tmp_path):
    def model(config: dict) -> float:
        x = config["x"]
        if x == 1:
            raise ValueError("no kernel for x=1")
        if x == 2:
            raise WrongAnswerError("max error 0.5 at index 3")
        return {3: float("nan"), 4: None, 5: -2.0}.get(x, 100.0 + (x - 7) ** 2)

    result = amk.tune(model, {"x": list(range(10))}, kind="predicted", unit="us", budget=10, store=corpus,
                      workload="toy:model", shape={"n": 10}, device="h100")
    assert result.evaluations == 10 and result.best_config == {"x": 7} and result.best_latency_us == 100.0
    by_x = {r.config["x"]: r.measurement for r in result.records}
    assert by_x[1].verdict.value == "CRASH" and by_x[1].reason == "ValueError: no kernel for x=1"
    assert by_x[2].verdict.value == "FAIL" and "max error 0.5" in by_x[2].reason
    for x, shown in ((3, "nan"), (4, "None"), (5, "-2.0")):
        assert by_x[x].verdict.value == "CRASH" and f"returned {shown} for {{'x': {x}}}" in by_x[x].reason
    stored = list(JsonlStore(JsonlStore.Options(path=str(tmp_path / "corpus.jsonl"))).query())
    assert len(stored) == 10 and {r.device.name for r in stored} == {"h100"}
    assert {r.workload.name for r in stored} == {"model"} and stored[0].workload.shape == {"n": 10}
    assert [point for point in result.curve if point[1] is not None][-1][1] == 100.0


def test_restrictions_keep_configs_out_of_the_run(corpus):
    seen = []

    def model(config: dict) -> float:
        seen.append(dict(config))
        return 1.0 + config["bx"] * config["by"]

    result = amk.tune(model, {"bx": [1, 2, 4], "by": [1, 2, 4]}, restrictions=["bx * by <= 4", "bx >= by"],
                      kind="predicted", budget=20, store=corpus)
    assert sorted((c["bx"], c["by"]) for c in seen) == [(1, 1), (2, 1), (2, 2), (4, 1)]
    assert result.stop_reason == "every config of the search space was evaluated"


def test_a_resumed_run_goes_on_where_it_stopped_without_measuring_a_config_twice(corpus):
    calls = []

    def model(config: dict) -> float:
        calls.append(config["x"])
        return 10.0 + config["x"]

    first = amk.tune(model, {"x": list(range(8))}, kind="predicted", budget=3, store=corpus, seed=5)
    resumed = amk.tune(model, {"x": list(range(8))}, kind="predicted", budget=6, store=corpus, resume=True)
    assert resumed.evaluations == 6 and resumed.report["sessions"] == 2
    assert resumed.report["run_id"] == first.report["run_id"] and len(set(calls)) == len(calls) == 6
    assert json.loads(resumed.state_path.read_text())["run_id"] == first.report["run_id"]


def linear(config: dict) -> float:
    return 10.0 + config["x"] + config.get("y", 0)


@pytest.mark.parametrize(("change", "says"), [
    ({"store": "jsonl:other.jsonl"}, "the store: the run's records are in jsonl:"),
    ({"space": {"x": [0, 1, 2, 3, 4]}}, "knob 'x' choices were [0, 1, 2, 3], now [0, 1, 2, 3, 4]"),
    ({"space": {"x": [0, 1, 2, 3], "y": [0, 1]}}, "knob 'y' is new"),
    ({"restrictions": ["x < 3"]}, "restriction 'x < 3' is new"),
    ({"unit": "s"}, "the unit: 'ms' then, 's' now"),
    ({"kind": "measured"}, "the measurement kind: 'predicted' then, 'measured' now"),
])
def test_resuming_against_other_inputs_than_the_run_started_with_is_refused_saying_what_differs(
        corpus, change, says):
    from amk.core.errors import TuneStateError

    first = {"space": {"x": [0, 1, 2, 3]}, "kind": "predicted", "store": corpus}
    amk.tune(linear, **first, budget=2)
    with pytest.raises(TuneStateError) as refused:
        amk.tune(linear, **{**first, **change}, budget=4, resume=True)
    assert says in str(refused.value) and "without --resume (resume=False" in str(refused.value)


def test_a_resume_naming_the_same_store_file_another_way_goes_on(corpus, tmp_path):
    space = {"x": list(range(8))}
    first = amk.tune(linear, space, kind="predicted", budget=2, store="jsonl:corpus.jsonl")
    resumed = amk.tune(linear, space, kind="predicted", budget=4, store=corpus, resume=True)  # the absolute path
    again = amk.tune(linear, space, kind="predicted", budget=5, store="jsonl:./corpus.jsonl", resume=True)
    assert again.report["run_id"] == resumed.report["run_id"] == first.report["run_id"]
    assert again.evaluations == 5 and again.report["sessions"] == 3
    rewritten = tmp_path / "rewritten.jsonl"  # as corpus migrate does: the same path, a new file (inode)
    rewritten.write_bytes((tmp_path / "corpus.jsonl").read_bytes())
    rewritten.replace(tmp_path / "corpus.jsonl")
    after = amk.tune(linear, space, kind="predicted", budget=6, store=corpus, resume=True)
    assert after.report["run_id"] == first.report["run_id"] and after.evaluations == 6


def test_process_isolation_is_refused_with_what_to_use_instead(corpus):
    with pytest.raises(ConfigError, match="command backend"):
        amk.tune(lambda c: 1.0, {"x": [1]}, settings={"isolation": "process"}, store=corpus)


def test_a_kind_that_is_no_measurement_kind_is_refused_naming_the_kinds(corpus):
    with pytest.raises(ValidationError, match=r"kind 'guessed' is not a measurement kind; give one of 'measured'"):
        amk.tune(lambda c: 1.0, {"x": [1]}, kind="guessed", store=corpus, workload="toy:constant")


@pytest.mark.parametrize("objective", [lambda c: 1.0, functools.partial(constant, value=2.0), Constant()],
                         ids=["lambda", "partial", "callable-object"])
def test_an_objective_without_a_name_of_its_own_must_be_given_a_workload(corpus, objective):
    with pytest.raises(ValidationError, match=r"cannot name a workload after .* Give workload='kind:name'"):
        amk.tune(objective, {"x": [1]}, store=corpus)
    run = amk.tune(objective, {"x": [1, 2]}, kind="predicted", store=corpus, workload="toy:constant")
    assert {r.workload.name for r in run.records} == {"constant"}


def test_a_named_function_is_its_own_workload(corpus):
    def first_model(config: dict) -> float:
        return 1.0 + config["x"]

    run = amk.tune(first_model, {"x": [1, 2]}, kind="predicted", store=corpus)
    assert {r.workload.name for r in run.records} == {f"{__name__}.{first_model.__qualname__}"}


def test_importing_amk_stays_cheap_and_amk_tune_is_a_function():
    code = ("import sys, amk; assert callable(amk.tune); "
            "print(sorted(m for m in sys.modules if m.startswith(('amk.tuning', 'amk.api', 'numpy', 'simpleeval'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=amk_env(), timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_store_that_is_neither_a_store_nor_a_url_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="store must be a Store, a store URL"):
        amk.tune(blocked_sum, SPACE, unit="s", budget=1, store=42)


def test_objectives_of_two_scripts_are_two_workloads_though_both_run_as_main(tmp_path):
    script = ("import amk\n"
              "def objective(config):\n"
              "    return {{16: {a}, 64: {b}}}[config['block']]\n"
              "run = amk.tune(objective, {{'block': [16, 64]}}, kind='predicted', budget=2, store='jsonl:corpus.jsonl')\n"
              "print(run.workload.name, len(run.warm_start))\n")
    names = []
    for stem, (a, b) in {"sort_tune": (5.0, 1.0), "gemm_tune": (1.0, 4.0)}.items():
        (tmp_path / f"{stem}.py").write_text(script.format(a=a, b=b))
        out = subprocess.run([sys.executable, f"{stem}.py"], cwd=tmp_path, env=amk_env(), capture_output=True,
                             text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        names.append(out.stdout.split())
    assert names == [["sort_tune.objective", "0"], ["gemm_tune.objective", "0"]]  # no warm start from the other


def test_a_function_of_main_without_a_file_must_be_given_a_workload(corpus, monkeypatch):
    import types

    def objective(config: dict) -> float:
        return 1.0

    objective.__module__ = "__main__"
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # a REPL's or a notebook's
    with pytest.raises(ValidationError, match=r"defined in __main__ without a file .* Give workload='kind:name'"):
        amk.tune(objective, {"x": [1]}, store=corpus)


def test_choices_given_as_numpy_values_or_a_range_are_tuned_as_python_values(corpus):
    seen = []

    def model(config: dict) -> float:
        seen.append(config)
        return 1.0 + config["x"] + config["y"]

    space = {"x": np.arange(3), "y": range(2), "z": [np.float32(0.5), np.int64(8), np.bool_(True)]}
    run = amk.tune(model, space, kind="predicted", budget=20, store=corpus)
    assert run.evaluations == 18 and run.best_config == {"x": 0, "y": 0, "z": run.best_config["z"]}
    assert {type(v) for c in seen for v in c.values()} <= {int, float, bool}
    assert {c["z"] for c in seen} == {0.5, 8, True} and {type(c["z"]) for c in seen} == {float, int, bool}


def test_a_callable_restriction_that_raises_is_one_error_naming_it_and_the_config(corpus):
    def ratio_above_one(config: dict) -> bool:
        return 10 / config["x"] > 1

    with pytest.raises(ValidationError, match=r"the restriction .*ratio_above_one raised ZeroDivisionError "
                                              r"\(division by zero\) on the config \{'x': 0\}"):
        amk.tune(constant, {"x": [0, 1, 2]}, restrictions=[ratio_above_one], kind="predicted", store=corpus)
