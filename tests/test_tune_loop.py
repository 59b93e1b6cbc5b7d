"""The tune loop: seeds first, never a config twice, failures recorded and survived, gates, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from amk.core.columns import CorpusColumns, config_key
from amk.core.devices import resolve_device
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.stores.jsonl import JsonlStore
from amk.stores.memory import MemoryStore
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings
from amk.tuning.state import TuneState
from amk.tuning.target import TuneTarget
from tests.conftest import REPO_ROOT, amk_env
from tests.tune_helpers import ToyBackend, candidate_records, config_keys, toy_workload

DEVICE = resolve_device("h100")
EMPTY = CorpusColumns.from_records([])


def target_for(backend: ToyBackend, corpus: CorpusColumns = EMPTY, **settings) -> tuple[TuneTarget, TuneSettings]:
    s = TuneSettings(**{"policy": "prior", "timeout_s": 5.0, **settings})
    return TuneTarget.prepare(toy_workload(), DEVICE, backend, corpus, s), s


def toy_record(x: int, latency: float, device=DEVICE) -> Record:
    return Record(workload=toy_workload(), device=device, config={"x": x},
                  measurement=Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=latency),
                  provenance=Provenance(backend="toy"))


def test_every_evaluation_measures_a_config_not_tried_before_in_the_run():
    backend = ToyBackend()
    target, settings = target_for(backend)
    result = tune(target, settings, budget=16)
    keys = [t.key for t in result.state.trials]
    assert len(keys) == 16 and len(set(keys)) == 16
    assert result.state.stop_reason == "budget of 16 evaluations reached"


def test_the_loop_stops_when_every_config_was_evaluated():
    target, settings = target_for(ToyBackend(ToyBackend.Options(n=5)))
    result = tune(target, settings, budget=50)
    assert len(result.state.trials) == 5
    assert result.state.stop_reason == "every config of the search space was evaluated"


def test_configs_that_build_the_same_kernel_are_measured_once():
    from amk.backends.roofline import RooflineBackend
    from amk.decode.shapes import ModelShape
    from amk.decode.workload import decode_workload

    workload = decode_workload("tiny", ModelShape(hidden=512, n_layers=2, n_heads=8, n_kv_heads=8, head_dim=64,
                                                  intermediate=1024, vocab=1000))
    backend = RooflineBackend()
    settings = TuneSettings(policy="prior", budget=0)
    target = TuneTarget.prepare(workload, DEVICE, backend, EMPTY, settings)
    result = tune(target, settings, budget=10_000)
    canonical = {config_key(backend.search_space(workload, DEVICE).canonical(
        backend.knob_config(workload, r.config))) for r in result.records}
    assert len(canonical) == len(result.records) == len(target.candidates)
    assert all(r.config["kernel_knobs"]["cols_per_warp"] == 1 for r in result.records
               if r.config["kernel_knobs"]["cpasync"] == 1)


def test_warm_start_seeds_from_the_corpus_are_measured_first():
    corpus = CorpusColumns.from_records([toy_record(7, 100.0), toy_record(9, 104.0), toy_record(3, 116.0)])
    target, settings = target_for(ToyBackend(), corpus)
    result = tune(target, settings, budget=4)
    assert [t.key for t in result.state.trials[:3]] == [config_key({"x": x}) for x in (7, 9, 3)]


def test_a_backend_that_raises_on_one_config_gives_a_crash_record_and_the_loop_goes_on():
    backend = ToyBackend(ToyBackend.Options(crash_at=3))
    target, settings = target_for(backend)
    store = MemoryStore()
    result = tune(target, settings, budget=16, store=store)
    crashed = [r for r in store.query() if r.config == {"x": 3}]
    assert [r.measurement.verdict for r in crashed] == [Verdict.CRASH]
    assert "the toy kernel crashed on x=3" in crashed[0].measurement.reason
    assert len(result.state.trials) == 16


def test_a_backend_that_hangs_on_one_config_gives_a_timeout_record_and_the_loop_goes_on():
    backend = ToyBackend(ToyBackend.Options(hang_at=2))
    target, settings = target_for(backend, timeout_s=0.3)
    store = MemoryStore()
    try:
        started = time.monotonic()
        result = tune(target, settings, budget=16, store=store)
        elapsed = time.monotonic() - started
    finally:
        backend.release.set()
    hung = [r for r in store.query() if r.config == {"x": 2}]
    assert [r.measurement.verdict for r in hung] == [Verdict.TIMEOUT]
    assert len(result.state.trials) == 16
    assert elapsed < 10


def test_a_latency_below_the_physical_floor_is_rejected_and_never_kept():
    backend = ToyBackend(ToyBackend.Options(below_floor_at=5, floor=90.0))
    target, settings = target_for(backend)
    result = tune(target, settings, budget=16)
    trial = next(t for t in result.state.trials if t.key == config_key({"x": 5}))
    assert trial.verdict == "REJECTED" and not trial.kept
    assert result.state.incumbent_key == config_key({"x": 7})
    assert all(r.measurement.bound_us == 90.0 for r in result.records)


def test_the_corpus_after_a_run_holds_every_measured_point_with_kind_and_verdict(tmp_path):
    backend = ToyBackend(ToyBackend.Options(crash_at=4, kind="measured", noise=0.01))
    target, settings = target_for(backend, ab_rounds=2)
    store = JsonlStore(JsonlStore.Options(path=str(tmp_path / "corpus.jsonl")))
    result = tune(target, settings, budget=12, store=store)
    stored = list(store.query())
    assert len(stored) == result.state.measurements == len(backend.calls)
    assert sorted(config_keys(candidate_records(stored))) == sorted(t.key for t in result.state.trials)
    assert {r.measurement.kind for r in stored} == {MeasurementKind.MEASURED}
    assert Verdict.CRASH in {r.measurement.verdict for r in stored}


def test_a_predicted_backend_keeps_every_faster_config_however_small_the_gain():
    # min_gain guards against measurement noise; a prediction has none, so the run's best is its fastest.
    target, settings = target_for(ToyBackend(ToyBackend.Options(n=16)), min_gain=0.2)
    result = tune(target, settings, budget=16)
    assert result.state.incumbent_us == 100.0 == min(t.latency_us for t in result.state.trials)
    assert result.state.incumbent_key == config_key({"x": 7})


def test_measured_backends_keep_a_faster_config_only_after_interleaved_re_measurement():
    backend = ToyBackend(ToyBackend.Options(kind="measured", noise=0.001))
    corpus = CorpusColumns.from_records([toy_record(0, 149.0), toy_record(7, 150.0)])
    target, settings = target_for(backend, corpus, ab_rounds=3)
    result = tune(target, settings, budget=2)
    roles = [r.provenance.extra["role"] for r in result.records]
    assert roles.count("ab-incumbent") == 3 and roles.count("ab-challenger") == 3
    assert result.state.incumbent_key == config_key({"x": 7})  # 100 us against 149 us: kept


def test_a_gain_inside_the_noise_is_reverted():
    backend = ToyBackend(ToyBackend.Options(kind="measured", noise=0.02))
    # x=6 and x=8 are both 101 us; whichever is measured first, the other is no real gain. With 9
    # pairs and a 3-standard-error margin a false "gain" has a chance of about 0.3%.
    corpus = CorpusColumns.from_records([toy_record(6, 1.0), toy_record(8, 2.0)])
    target, settings = target_for(backend, corpus, ab_rounds=9, ab_noise=3.0)
    result = tune(target, settings, budget=2)
    assert result.state.trials[0].kept
    assert not result.state.trials[1].kept


RUNNER = """
import sys
from pathlib import Path
from amk.core.columns import CorpusColumns
from amk.core.devices import resolve_device
from amk.tuning.settings import TuneSettings
from amk.tuning.target import TuneTarget
from amk.tuning.loop import tune
from amk.stores.jsonl import JsonlStore
from amk.decode.workload import decode_workload
from tests.tune_helpers import ToyBackend, toy_workload

folder, resume = Path(sys.argv[1]), sys.argv[2] == "resume"
backend = ToyBackend(ToyBackend.Options(n=40, sleep_s=float(sys.argv[3])))
settings = TuneSettings(policy="surrogate", exploration="epsilon", epsilon=0.3)
target = TuneTarget.prepare(toy_workload(), resolve_device("h100"), backend, CorpusColumns.from_records([]), settings)
store = JsonlStore(JsonlStore.Options(path=str(folder / "corpus.jsonl")))
tune(target, settings, seed=3, budget=20, store=store, state_path=folder / "run.state.json", resume=resume)
"""


def run_runner(tmp_path: Path, mode: str, sleep_s: float) -> subprocess.Popen:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path), mode, str(sleep_s)],
                            env=amk_env([str(REPO_ROOT)]), cwd=tmp_path)


def test_a_run_killed_with_sigkill_resumes_where_it_stopped(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    proc = run_runner(tmp_path, "new", 0.15)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if corpus.exists() and corpus.read_text().count("\n") >= 6:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run wrote no records within 60 s")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    assert 6 <= len(before) < 20, "the kill must land in the middle of the run"

    finished = run_runner(tmp_path, "resume", 0.0)
    assert finished.wait(120) == 0
    after = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    state = TuneState.load(tmp_path / "run.state.json", json.loads(json.dumps(_target_id())))
    assert after[:len(before)] == before
    assert len(after) == 20
    assert len({config_key(r["config"]) for r in after}) == 20  # nothing measured twice across the kill
    assert [r["provenance"]["extra"]["evaluation"] for r in after] == list(range(1, 21))
    assert {r["provenance"]["extra"]["run"] for r in after} == {state.run_id}
    assert state.sessions == 2 and len(state.trials) == 20
    best = min(after, key=lambda r: r["measurement"]["latency_us"])
    assert state.incumbent_key == config_key(best["config"])


def _target_id() -> str:
    from amk.tuning.target import target_id

    return target_id(toy_workload(), DEVICE, "toy")


def test_resume_without_a_state_file_says_how_to_start(tmp_path):
    from amk.core.errors import TuneStateError

    target, settings = target_for(ToyBackend())
    with pytest.raises(TuneStateError, match="run without --resume"):
        tune(target, settings, budget=3, state_path=tmp_path / "none.json", resume=True)


def test_a_state_file_is_replaced_atomically_and_reads_back(tmp_path):
    target, settings = target_for(ToyBackend())
    path = tmp_path / "s.json"
    result = tune(target, settings, budget=4, state_path=path)
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left behind
    loaded = TuneState.load(path, target.target_id)
    assert attrs.asdict(loaded) == attrs.asdict(result.state)


def test_a_resume_with_a_backend_option_that_changes_latencies_is_refused_naming_it(tmp_path):
    from amk.core.errors import TuneStateError

    path, store = tmp_path / "s.json", JsonlStore(JsonlStore.Options(path=str(tmp_path / "c.jsonl")))
    target, settings = target_for(ToyBackend())
    tune(target, settings, budget=2, store=store, state_path=path)
    noisy, settings = target_for(ToyBackend(ToyBackend.Options(noise=0.1)))
    with pytest.raises(TuneStateError, match=r"the backend option noise: 0.0 then, 0.1 now"):
        tune(noisy, settings, budget=4, store=store, state_path=path, resume=True)


def test_a_resume_whose_space_enumerates_other_configs_under_the_same_knobs_is_refused(tmp_path):
    from amk.core.errors import TuneStateError

    path = tmp_path / "s.json"
    target, settings = target_for(ToyBackend())
    tune(target, settings, budget=2, state_path=path)
    fewer, settings = target_for(ToyBackend(), max_candidates=8)  # a callable restriction's change looks alike
    with pytest.raises(TuneStateError, match=r"configs: 16 configs, sha256 \w+ then, 8 configs, sha256 \w+ now"):
        tune(fewer, settings, budget=4, state_path=path, resume=True)


def _state_edited_after_a_run(tmp_path, edit, store=None):
    """A first run of the toy target (2 evaluations), then its state file's ``bound`` edited by ``edit`` (in
    place, or replaced by what it returns): (target, settings, state path, first run's result)."""
    path = tmp_path / "s.json"
    target, settings = target_for(ToyBackend())
    first = tune(target, settings, budget=2, store=store, state_path=path)
    state = json.loads(path.read_text())
    state["bound"] = edit(state["bound"]) or state["bound"]
    path.write_text(json.dumps(state))
    return target, settings, path, first


def test_a_run_killed_before_its_first_record_created_the_store_file_resumes_on_that_file(tmp_path):
    from amk.tuning.binding import store_identity

    corpus = tmp_path / "c.jsonl"
    store = JsonlStore(JsonlStore.Options(path=str(corpus)))
    as_before = ["path", str(corpus)]  # the identity saved before the file existed
    target, settings, path, first = _state_edited_after_a_run(
        tmp_path, lambda b: b.update(store_identity=as_before), store)
    assert store_identity(store) != as_before
    resumed = tune(target, settings, budget=3, store=store, state_path=path, resume=True)
    assert resumed.state.run_id == first.state.run_id and len(resumed.state.trials) == 3


@pytest.mark.parametrize(("edit", "says"), [
    (lambda b: b["space"].update(knobs=[1]), r"\$\.bound\.space\.knobs is \[1\], not a JSON object"),
    (lambda b: b["space"]["knobs"].update(x=5), r"\$\.bound\.space\.knobs\['x'\] is not a knob"),
    (lambda b: b["space"].update(restrictions="x < 2"), r"\$\.bound\.space\.restrictions is \"x < 2\""),
    (lambda b: b["measurement"].update(options=None), r"\$\.bound\.measurement\.options is null"),
    (lambda b: [1], r"\$\.bound is \[1\], not a JSON object"),
])
def test_a_state_whose_binding_was_edited_into_another_shape_is_malformed_naming_the_part(tmp_path, edit, says):
    from amk.core.errors import TuneStateError

    target, settings, path, _ = _state_edited_after_a_run(tmp_path, edit)
    with pytest.raises(TuneStateError, match=f"is malformed \\({says}"):
        tune(target, settings, budget=3, state_path=path, resume=True)


def test_a_resume_whose_store_file_was_deleted_since_is_refused_not_reported_from_an_empty_store(tmp_path):
    from amk.core.errors import TuneStateError

    path, corpus = tmp_path / "s.json", tmp_path / "c.jsonl"
    store = JsonlStore(JsonlStore.Options(path=str(corpus)))
    target, settings = target_for(ToyBackend())
    tune(target, settings, budget=2, store=store, state_path=path)
    corpus.unlink()
    with pytest.raises(TuneStateError, match=r"holds no record of 2 of the 2 evaluation\(s\) of run \w+"):
        tune(target, settings, budget=3, store=JsonlStore(JsonlStore.Options(path=str(corpus))), state_path=path,
             resume=True)
    assert not corpus.exists()


def test_a_state_from_before_amk_kept_its_binding_resumes_with_a_note_that_it_was_not_checked(tmp_path):
    from amk.core.errors import LeftOutWarning

    path = tmp_path / "s.json"
    target, settings = target_for(ToyBackend())
    tune(target, settings, budget=2, state_path=path)
    state = json.loads(path.read_text())
    del state["bound"]
    path.write_text(json.dumps(state))
    with pytest.warns(LeftOutWarning, match="predates the record of the store and search space"):
        resumed = tune(target, settings, budget=3, state_path=path, resume=True)
    assert len(resumed.state.trials) == 3 and json.loads(path.read_text())["bound"] is not None


def test_the_minutes_limit_stops_the_loop():
    target, settings = target_for(ToyBackend(ToyBackend.Options(sleep_s=0.05)))
    result = tune(target, settings, budget=0, minutes=0.2 / 60)
    assert result.state.stop_reason.startswith("time limit")
    assert 1 <= len(result.state.trials) < 16


def test_progress_off_a_terminal_is_one_plain_line_per_evaluation_with_the_incumbent():
    import io

    from amk.tuning.progress import Progress

    quiet, shown = io.StringIO(), io.StringIO()
    target, settings = target_for(ToyBackend())
    tune(target, settings, budget=3, progress=Progress("tune", 3, unit="evaluations", mode="off", stream=quiet))
    tune(target, settings, budget=3, progress=Progress("tune", 3, unit="evaluations", stream=shown))
    lines = shown.getvalue().splitlines()
    assert quiet.getvalue() == ""
    assert [line.split(":")[1].split()[0] for line in lines] == ["0/3", "1/3", "2/3", "3/3"]
    assert "best " in lines[-1] and "us (predicted, evaluation" in lines[-1] and "\x1b" not in shown.getvalue()


def test_without_data_for_the_device_the_zero_shot_order_weighs_a_device_of_its_architecture_more():
    # For an a6000 (sm_86) the a100 (sm_80) is nearer by memory size; the a4000 shares its architecture.
    # They disagree: the a100 is fastest at x=1, the a4000 at x=5; the a4000's answer comes first.
    a100, a4000 = resolve_device("a100"), resolve_device("a4000")
    corpus = CorpusColumns.from_records([toy_record(x, 10.0 + abs(x - 1), a100) for x in range(16)]
                                        + [toy_record(x, 10.0 + abs(x - 5), a4000) for x in range(16)])
    s = TuneSettings(policy="prior")
    target = TuneTarget.prepare(toy_workload(), resolve_device("a6000"), ToyBackend(), corpus, s)
    assert target.seeds[0] == config_key({"x": 5})
    assert "zero-shot order" in target.seed_sources[0] and "specs" in target.seed_sources[0]


def test_without_a_device_of_its_architecture_the_first_seed_is_the_best_on_average():
    a4000, l4 = resolve_device("a4000"), resolve_device("l4")  # sm_86 and sm_89; the target h100 is sm_90
    corpus = CorpusColumns.from_records([
        toy_record(1, 10.0, a4000), toy_record(2, 10.5, a4000), toy_record(3, 20.0, a4000),
        toy_record(1, 30.0, l4), toy_record(2, 10.0, l4), toy_record(3, 10.2, l4)])
    s = TuneSettings(policy="prior")
    target = TuneTarget.prepare(toy_workload(), DEVICE, ToyBackend(), corpus, s)
    assert target.seeds[0] == config_key({"x": 2})
    assert target.transfer_devices == ["a4000", "l4"]


def test_without_matplotlib_the_report_says_how_to_get_the_plot_and_writes_no_png(tmp_path, monkeypatch):
    from amk.tuning.report import write_report

    target, settings = target_for(ToyBackend())
    result = tune(target, settings, budget=3)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without amk[plot] looks like
    report = write_report(result, settings, tmp_path, "run", store=None)
    assert report["plot"] is None and "pip install 'amk[plot]'" in report["plot_note"]
    assert not list(tmp_path.rglob("*.png"))
    assert json.loads((tmp_path / "run" / "latest.report.json").read_text())["evaluations"] == 3


def test_without_scikit_learn_the_surrogate_policy_names_the_extra_and_the_alternative(monkeypatch):
    from amk.core.errors import MissingDependencyError

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    target, settings = target_for(ToyBackend(), policy="surrogate")
    with pytest.raises(MissingDependencyError, match=r"amk\[sklearn\].*policy = \"prior\""):
        tune(target, settings, budget=3)


def test_the_floor_guard_leaves_a_measurement_that_carries_its_backends_bound_to_that_backend():
    from amk.core.records import Measurement, MeasurementKind, Verdict
    from amk.tuning.gates import floor_guard

    # The backend re-measured its bandwidth mid-run and judged the latency against its own bound (80 us): the
    # run's floor (100 us, computed at the start, maybe from a reading taken under load) does not reject it.
    measured = Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=79.0, bound_us=80.0)
    assert floor_guard(measured, 100.0, 0.02) == measured
    unjudged = Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=90.0)
    guarded = floor_guard(unjudged, 100.0, 0.02)
    assert guarded.verdict is Verdict.REJECTED and guarded.bound_us == 100.0
