"""A resumed tune run is the run that was never interrupted; a killed model save never leaves a model that
crashes its loader; tune state files are validated when read. (Races of tune runs: test_reliability_races.py.)"""

from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import amk_env
from tune_helpers import ToyBackend, toy_workload

from amk.core.columns import CorpusColumns
from amk.core.devices import resolve_device
from amk.core.errors import ModelFileError, TuneStateError
from amk.stores.memory import MemoryStore
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings
from amk.tuning.state import TuneState
from amk.tuning.target import TuneTarget

TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "reliability_worker.py"
KILLS = 2
DEVICE = resolve_device("h100")
SETTINGS = TuneSettings(policy="surrogate", exploration="epsilon", epsilon=0.3, ab_rounds=3, min_gain=0.0,
                        isolation="thread")


class Killed(BaseException):
    """What SIGKILL does to the loop, in this process: nothing after the raise runs (no state save)."""


class KilledAfterAppend(MemoryStore):
    """A store whose process dies right after it appended one evaluation's candidate record: the record is
    in the store, the state file does not have it yet."""

    def __init__(self, name: str, evaluation: int) -> None:
        super().__init__(MemoryStore.Options(shared_name=name))
        self.evaluation = evaluation

    def append(self, records):
        n = super().append(records)
        if any(r.provenance.extra.get("role") == "candidate" and r.provenance.extra.get("evaluation") == self.evaluation
               for r in records):
            raise Killed
        return n


def measured_target() -> TuneTarget:
    backend = ToyBackend(ToyBackend.Options(n=40, noise=0.03, kind="measured"))
    return TuneTarget.prepare(toy_workload(), DEVICE, backend, CorpusColumns.from_records([]), SETTINGS)


def summary(state: TuneState) -> tuple:
    return ([(t.key, t.verdict, t.latency_us, t.kept) for t in state.trials], state.incumbent_key,
            state.incumbent_us, state.measurements)


def test_a_run_killed_between_a_kept_a_b_and_its_state_save_resumes_as_if_never_interrupted(tmp_path):
    reference = tune(measured_target(), SETTINGS, seed=3, budget=24, store=MemoryStore(),
                     state_path=tmp_path / "reference.json").state
    kept_after_ab = [t.evaluation for t in reference.trials if t.kept and t.evaluation > 1]
    assert kept_after_ab, "the reference run must keep a challenger after an A/B"
    for n, evaluation in enumerate(kept_after_ab[:2]):
        target = measured_target()  # the same backend instance measures before and after the kill
        name = f"killed-{n}-{tmp_path}"
        with pytest.raises(Killed):
            tune(target, SETTINGS, seed=3, budget=24, store=KilledAfterAppend(name, evaluation),
                 state_path=tmp_path / f"run{n}.json")
        assert len(TuneState.load(tmp_path / f"run{n}.json", target.target_id).trials) == evaluation - 1
        resumed = tune(target, SETTINGS, seed=3, budget=24, store=MemoryStore(MemoryStore.Options(shared_name=name)),
                       state_path=tmp_path / f"run{n}.json", resume=True)
        assert resumed.adopted == 1
        assert summary(resumed.state) == summary(reference)


class CtrlCAfterAppend(KilledAfterAppend):
    """Ctrl-C lands right after one evaluation's candidate record was appended: the loop saves its state."""

    def append(self, records):
        try:
            return super().append(records)
        except Killed:
            raise KeyboardInterrupt from None


def test_a_run_interrupted_by_ctrl_c_after_a_record_resumes_as_if_never_interrupted(tmp_path):
    from amk.core.errors import Interrupted

    reference = tune(measured_target(), SETTINGS, seed=3, budget=12, store=MemoryStore(),
                     state_path=tmp_path / "reference.json").state
    target = measured_target()
    name = f"ctrl-c-{tmp_path}"
    with pytest.raises(Interrupted):
        tune(target, SETTINGS, seed=3, budget=12, store=CtrlCAfterAppend(name, 6), state_path=tmp_path / "run.json")
    resumed = tune(target, SETTINGS, seed=3, budget=12, store=MemoryStore(MemoryStore.Options(shared_name=name)),
                   state_path=tmp_path / "run.json", resume=True)
    assert summary(resumed.state) == summary(reference)


def test_a_measured_tune_run_killed_at_random_points_resumes_with_the_incumbent_the_records_say(tmp_path):
    from tune_helpers import toy_workload

    from amk.tuning.state import TuneState
    from amk.tuning.target import target_id

    def run(mode: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(WORKER), "tune", str(tmp_path), mode, "25"], env=amk_env())

    corpus = tmp_path / "corpus.jsonl"

    def lines() -> int:
        return corpus.read_bytes().count(b"\n") if corpus.exists() else 0

    def kill_once_it_wrote(proc: subprocess.Popen, more: int) -> None:
        target, deadline = lines() + more, time.monotonic() + 120
        while lines() < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    rng = random.Random(4)
    kill_once_it_wrote(run("new"), rng.randint(5, 20))
    for _ in range(KILLS - 1):
        kill_once_it_wrote(run("resume"), rng.randint(3, 15))
    assert run("resume").wait(180) == 0
    from amk.core.devices import resolve_device

    state = TuneState.load(tmp_path / "run.state.json", target_id(toy_workload(), resolve_device("h100"), "toy"))
    written = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    candidates = [r for r in written if r["provenance"]["extra"]["role"] == "candidate"]
    assert [r["provenance"]["extra"]["evaluation"] for r in candidates] == list(range(1, 26))  # none twice
    assert len({json.dumps(r["config"], sort_keys=True) for r in candidates}) == 25
    kept = [r for r in candidates if r["provenance"]["extra"]["kept"]]
    last = kept[-1]["provenance"]["extra"]["evaluation"]
    ab = [r for r in written if r["provenance"]["extra"]["evaluation"] == last
          and r["provenance"]["extra"]["role"] == "ab-challenger"][-2:]
    expected = kept[-1]["measurement"]["latency_us"] if last == 1 or not ab else \
        statistics.median(r["measurement"]["latency_us"] for r in ab)
    assert state.incumbent_us == pytest.approx(expected)


def test_a_model_save_killed_at_random_points_never_leaves_a_model_that_crashes_its_loader(tmp_path):
    folder = tmp_path / "model"
    rng = random.Random(3)
    outcomes = []
    for _ in range(2):
        saver = start("save-model", str(folder))
        assert saver.stdout.readline().strip() == "ready"
        kill_after(saver, rng.uniform(0.05, 0.6))
        loader = subprocess.run([sys.executable, str(WORKER), "load-model", str(folder)], capture_output=True,
                                text=True, env=amk_env(), timeout=120, check=False)
        assert loader.returncode == 0, loader.stderr  # never a SIGABRT or SIGSEGV
        outcomes.append(loader.stdout.strip())
        assert outcomes[-1] == "loaded" or outcomes[-1].startswith("refused: "), outcomes[-1]


def kill_after(proc: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=amk_env())


@pytest.fixture(scope="module")
def saved_lightgbm(tmp_path_factory):
    from amk.rankers.lightgbm import LightGBMRanker

    rng = np.random.default_rng(0)
    X = rng.random((300, 5)).astype(np.float32)
    ranker = LightGBMRanker(LightGBMRanker.Options(n_estimators=8, num_leaves=7, num_threads=1)).fit(
        X, X[:, 0] + 0.1 * rng.random(300))
    folder = tmp_path_factory.mktemp("model")
    ranker.save(folder)
    return folder, ranker.predict(X), X


def test_a_truncated_lightgbm_model_file_is_a_model_file_error_not_an_abort(saved_lightgbm, tmp_path):
    import shutil

    folder, _, _ = saved_lightgbm
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    text = (copy / "model.txt").read_bytes()
    (copy / "model.txt").write_bytes(text[: len(text) // 3])
    loader = subprocess.run([sys.executable, str(WORKER), "load-model", str(copy)], capture_output=True, text=True,
                            env=amk_env(), timeout=120, check=False)
    assert loader.returncode == 0, loader.stderr  # not SIGABRT
    assert loader.stdout.startswith("refused: ") and "damaged" in loader.stdout


@pytest.mark.parametrize("cut", [0.1, 0.45, 0.8, 0.97])
def test_a_lightgbm_model_damaged_behind_its_checksum_is_refused_in_process(saved_lightgbm, tmp_path, cut):
    import hashlib
    import shutil

    from amk.rankers.lightgbm import LightGBMRanker

    folder, _, _ = saved_lightgbm
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    text = (copy / "model.txt").read_bytes()
    damaged = text[: int(len(text) * cut)]  # and the checksum made to match, as a hand edit would
    (copy / "model.txt").write_bytes(damaged)
    doc = json.loads((copy / "model.json").read_text())
    doc["files"]["model.txt"] = hashlib.sha256(damaged).hexdigest()
    (copy / "model.json").write_text(json.dumps(doc))
    if b"end of trees" in damaged:  # only the parameters were cut: the trees are whole, and load
        LightGBMRanker.load(copy)
    else:
        with pytest.raises(ModelFileError, match="not a LightGBM model amk can load"):
            LightGBMRanker.load(copy)


def test_a_lightgbm_model_loads_with_the_predictions_it_was_saved_with(saved_lightgbm):
    from amk.rankers.lightgbm import LightGBMRanker

    folder, predictions, X = saved_lightgbm
    assert np.array_equal(LightGBMRanker.load(folder).predict(X), predictions)


def state_file(tmp_path: Path, change) -> Path:
    target = measured_target()
    path = tmp_path / "s.json"
    tune(target, SETTINGS, budget=3, state_path=path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data) if not isinstance(data, bytes) else data)
    return path


@pytest.mark.parametrize("change", [
    lambda d: d["trials"][0].__setitem__("latency_us", "12"),
    lambda d: d["trials"][0].__setitem__("latency_us", float("nan")),
    lambda d: d.__setitem__("measurements", True),
    lambda d: d.__setitem__("elapsed_s", -1.0),
    lambda d: d["trials"][1].__setitem__("evaluation", 7),
    lambda d: d.__setitem__("rng_state", {"bit_generator": "nope"}),
    lambda d: d["trials"][0].__setitem__("verdict", "MAYBE"),
], ids=["latency-string", "latency-nan", "bool-count", "negative-time", "gap", "rng", "verdict"])
def test_a_state_file_with_a_bad_value_is_refused_naming_the_file(tmp_path, change):
    path = state_file(tmp_path, change)
    with pytest.raises(TuneStateError, match=str(path)):
        tune(measured_target(), SETTINGS, budget=5, state_path=path, resume=True)


def test_a_binary_state_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    with pytest.raises(TuneStateError, match="unreadable"):
        TuneState.load(path, "x")


def test_amk_tune_refuses_a_minutes_limit_that_is_not_a_finite_number(run_amk):
    done = run_amk("tune", "--workload", "decode:m", "--shape", "hidden=64", "--device", "h100", "--minutes", "nan")
    assert done.returncode == 2 and "not a finite number" in done.stderr


def test_a_negative_layer_count_is_refused_before_anything_runs(run_amk):
    done = run_amk("tune", "--workload", "decode:m", "--shape", "hidden=64,n_layers=-2", "--device", "h100",
                   "--backend", "roofline", "--budget", "1")
    assert done.returncode == 2 and "n_layers" in done.stderr and "Traceback" not in done.stderr  # a usage error
