"""Measuring in a worker process: a segfault, abort, exit or hang costs one record, never the run.

The backend under test is a real plugin distribution (tests/isolation_helpers.py) that the worker rebuilds
through the registry; its failures are real (a read of address 0, os.abort, os._exit, a sleep).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amk.core.backend import Backend
from amk.core.columns import CorpusColumns
from amk.core.devices import resolve_device
from amk.core.errors import BackendError
from amk.core.plugins import build_registry
from amk.core.records import MeasurementKind, Verdict
from amk.core.workload import Workload
from amk.stores.memory import MemoryStore
from amk.tuning.isolation import BackendSpec, WorkerProcess, make_measurer, resolve_isolation
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings
from amk.tuning.target import TuneTarget
from tests.conftest import amk_env
from tests.isolation_helpers import BACKEND_NAME, alive, install_misbehaving_backend, worker_facts
from tests.tune_helpers import ToyBackend

DEVICE = resolve_device("h100")
WORKLOAD = Workload("toy", "misbehave", {"n": 1})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("site")
    install_misbehaving_backend(path)
    return path


@pytest.fixture
def registry(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    return build_registry()


@pytest.fixture
def worker(registry):
    """A function making a process-mode measurer of the misbehaving backend; every one is closed after."""
    made = []

    def make(**options):
        impl = registry.get(Backend, BACKEND_NAME)
        backend = registry.create(Backend, BACKEND_NAME, impl.cls.Options(**options))
        measurer = make_measurer(backend, "process", registry)
        made.append(measurer)
        return measurer

    yield make
    for measurer in made:
        measurer.close()


def measure(measurer, x: int, timeout_s: float | None = 30.0):
    return measurer.measure(WORKLOAD, DEVICE, {"x": x}, timeout_s)


def test_the_worker_is_one_process_kept_across_measurements_with_its_backend(worker):
    measurer = worker()
    first, second = measure(measurer, 0), measure(measurer, 1)
    assert first.verdict is Verdict.PASS and first.latency_us == 100.0
    assert worker_facts(first)["pid"] == worker_facts(second)["pid"] == measurer.pid != os.getpid()
    assert worker_facts(second)["calls"] == 2  # the same backend object measured both
    assert measurer.starts == 1


def test_what_the_backend_prints_to_stdout_does_not_disturb_the_protocol(worker):
    measurer = worker(chatty=True)
    assert [measure(measurer, x).verdict for x in (0, 1)] == [Verdict.PASS, Verdict.PASS]
    assert measurer.starts == 1


def test_a_numpy_knob_value_crosses_to_the_worker_as_its_python_number(worker):
    import numpy as np

    assert measure(worker(), np.int64(3)).latency_us == 103.0


def test_a_segfault_is_a_crash_naming_sigsegv_and_the_next_measurement_runs_in_a_new_worker(worker):
    measurer = worker(segfault_at=1)
    before = worker_facts(measure(measurer, 0))["pid"]
    crashed = measure(measurer, 1)
    assert crashed.verdict is Verdict.CRASH
    assert "signal 11 (SIGSEGV)" in crashed.reason and str(before) in crashed.reason
    assert "Segmentation fault" in crashed.reason  # the worker's last words (faulthandler) come along
    after = measure(measurer, 2)
    assert after.verdict is Verdict.PASS and worker_facts(after)["pid"] != before
    assert measurer.starts == 2


def test_an_abort_is_a_crash_naming_sigabrt(worker):
    crashed = measure(worker(abort_at=0), 0)
    assert crashed.verdict is Verdict.CRASH and "signal 6 (SIGABRT)" in crashed.reason


def test_an_exit_of_the_worker_is_a_crash_naming_its_exit_code(worker):
    crashed = measure(worker(exit_at=0), 0)
    assert crashed.verdict is Verdict.CRASH and "exited with code 3" in crashed.reason


def test_a_hang_is_a_timeout_that_kills_the_worker_and_what_it_started(worker, tmp_path):
    measurer = worker(hang_at=1, pid_dir=str(tmp_path))
    measure(measurer, 0)
    started = time.monotonic()
    hung = measure(measurer, 1, timeout_s=1.0)
    assert hung.verdict is Verdict.TIMEOUT and "no result within 1 s" in hung.reason
    assert time.monotonic() - started < 10
    worker_pid, child_pid = map(int, (tmp_path / "hang.pids").read_text().split())
    assert str(worker_pid) in hung.reason
    deadline = time.monotonic() + 5
    while (alive(worker_pid) or alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the child's reaper (init) may take a moment
    assert not alive(worker_pid) and not alive(child_pid)
    after = measure(measurer, 2)
    assert after.verdict is Verdict.PASS and worker_facts(after)["pid"] != worker_pid


def test_an_exception_is_a_crash_with_its_text_and_the_worker_is_replaced(worker):
    measurer = worker(raise_at=0)
    crashed = measure(measurer, 0)
    assert crashed.verdict is Verdict.CRASH
    assert crashed.reason == "RuntimeError: the misbehaving kernel raised on x=0"
    measure(measurer, 1)
    assert measurer.starts == 2


def test_a_refused_config_is_rejected_and_keeps_the_worker(worker):
    measurer = worker(invalid_at=0)
    rejected = measure(measurer, 0)
    assert rejected.verdict is Verdict.REJECTED and rejected.reason == "x=0 is refused"
    measure(measurer, 1)
    assert measurer.starts == 1


def test_a_crash_verdict_the_backend_returns_replaces_the_worker(worker):
    measurer = worker(crash_verdict_at=0)
    crashed = measure(measurer, 0)
    assert crashed.verdict is Verdict.CRASH and crashed.reason == "illegal memory access"
    measure(measurer, 1)
    assert measurer.starts == 2  # a CUDA error is sticky: the next candidate gets a clean process


def test_closing_the_measurer_ends_the_worker(worker):
    measurer = worker()
    pid = worker_facts(measure(measurer, 0))["pid"]
    measurer.close()
    assert measurer.pid is None and not alive(pid)


def test_in_process_mode_the_loop_records_every_failure_and_goes_on(registry, tmp_path):
    impl = registry.get(Backend, BACKEND_NAME)
    backend = registry.create(Backend, BACKEND_NAME, impl.cls.Options(
        segfault_at=2, hang_at=4, raise_at=6, exit_at=8, pid_dir=str(tmp_path)))
    settings = TuneSettings(policy="prior", timeout_s=1.0, isolation="process", warm_start=0)
    target = TuneTarget.prepare(WORKLOAD, DEVICE, backend, CorpusColumns.from_records([]), settings)
    store = MemoryStore()
    result = tune(target, settings, budget=10, store=store, registry=registry)
    verdicts = {r.config["x"]: r.measurement.verdict for r in store.query()}
    assert len(result.state.trials) == 10 and sorted(verdicts) == list(range(10))
    assert (verdicts[2], verdicts[4], verdicts[6], verdicts[8]) == (
        Verdict.CRASH, Verdict.TIMEOUT, Verdict.CRASH, Verdict.CRASH)
    assert all(verdicts[x] is Verdict.PASS for x in (0, 1, 3, 5, 7, 9))
    assert result.isolation == "process"
    assert result.state.incumbent_us == 100.0


RUNNER = """
import sys
from pathlib import Path
from amk.core.columns import CorpusColumns
from amk.core.devices import resolve_device
from amk.core.plugins import get_registry
from amk.tuning.settings import TuneSettings
from amk.tuning.target import TuneTarget
from amk.tuning.loop import tune
from amk.core.workload import Workload
from amk.core.backend import Backend

registry = get_registry()
backend = registry.create(Backend, "misbehave", registry.get(Backend, "misbehave").cls.Options(
    hang_at=1, pid_dir=sys.argv[1]))
settings = TuneSettings(policy="prior", timeout_s=600.0, isolation="process", warm_start=0)
target = TuneTarget.prepare(Workload("toy", "misbehave", {"n": 1}), resolve_device("h100"), backend,
                            CorpusColumns.from_records([]), settings)
tune(target, settings, budget=5)
"""


def test_a_killed_tune_run_leaves_no_worker_running(site, tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=amk_env([str(site)]), cwd=tmp_path)
    pids = tmp_path / "hang.pids"
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert pids.exists(), "the worker never reached the hanging measurement"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    worker_pid = int(pids.read_text().split()[0])
    deadline = time.monotonic() + 5
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker_pid), "the worker outlived its killed parent"


RESUMABLE_RUNNER = """
import sys
from pathlib import Path
from amk.core.columns import CorpusColumns
from amk.core.devices import resolve_device
from amk.core.plugins import get_registry
from amk.tuning.settings import TuneSettings
from amk.tuning.target import TuneTarget
from amk.tuning.loop import tune
from amk.core.workload import Workload
from amk.stores.jsonl import JsonlStore
from amk.core.backend import Backend

folder, resume = Path(sys.argv[1]), sys.argv[2] == "resume"
registry = get_registry()
backend = registry.create(Backend, "misbehave", registry.get(Backend, "misbehave").cls.Options(
    n=12, sleep_s=float(sys.argv[3])))
settings = TuneSettings(policy="prior", isolation="process", warm_start=0)
target = TuneTarget.prepare(Workload("toy", "misbehave", {"n": 1}), resolve_device("h100"), backend,
                            CorpusColumns.from_records([]), settings)
store = JsonlStore(JsonlStore.Options(path=str(folder / "corpus.jsonl")))
tune(target, settings, budget=12, store=store, state_path=folder / "run.state.json", resume=resume)
"""


def test_a_sigkilled_run_in_process_mode_resumes_without_measuring_a_config_twice(site, tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RESUMABLE_RUNNER)
    corpus = tmp_path / "corpus.jsonl"

    def run(mode: str, sleep_s: float) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(tmp_path), mode, str(sleep_s)],
                                env=amk_env([str(site)]), cwd=tmp_path)

    proc = run("new", 0.2)
    try:
        deadline = time.monotonic() + 60
        while not (corpus.exists() and corpus.read_text().count("\n") >= 4) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    assert 4 <= len(before) < 12, "the kill must land in the middle of the run"
    first_worker = int(before[0]["measurement"]["reason"].split()[0].split("=")[1])
    deadline = time.monotonic() + 5
    while alive(first_worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(first_worker)

    assert run("resume", 0.0).wait(120) == 0
    after = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    assert after[:len(before)] == before
    assert sorted(r["config"]["x"] for r in after) == list(range(12))
    assert [r["provenance"]["extra"]["evaluation"] for r in after] == list(range(1, 13))


def test_process_mode_refuses_a_backend_the_registry_cannot_rebuild(registry):
    with pytest.raises(BackendError, match=r"'toy'.*isolation = \"thread\""):
        make_measurer(ToyBackend(), "process", registry)


def test_a_worker_that_cannot_build_the_backend_says_how_to_measure_in_this_process(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    spec = BackendSpec(BACKEND_NAME, {}, "somewhere.else:Backend")
    with (WorkerProcess(spec, MeasurementKind.PREDICTED) as measurer,
          pytest.raises(BackendError, match=r"somewhere\.else:Backend.*isolation = \"thread\"")):
        measure(measurer, 0)


def test_auto_isolation_puts_compiled_backends_in_a_process_and_lookups_in_this_process():
    registry = build_registry(include_entry_points=False)
    modes = {name: resolve_isolation("auto", registry.create(Backend, name))
             for name in ("cpu", "cuda", "roofline", "replay")}
    assert modes == {"cpu": "process", "cuda": "process", "roofline": "thread", "replay": "thread"}
    assert resolve_isolation("thread", registry.create(Backend, "cpu")) == "thread"
    assert make_measurer(registry.create(Backend, "roofline"), "auto", registry).mode == "thread"


def test_a_built_in_backend_runs_in_a_worker_built_like_a_registry_without_entry_points(tmp_path):
    from amk.backends.replay import ReplayBackend
    from tests.tune_helpers import write_cache

    cache = write_cache(tmp_path / "A4000.json", device_name="NVIDIA RTX A4000", failed=())
    registry = build_registry(include_entry_points=False)
    backend = registry.create(Backend, "replay", ReplayBackend.Options(cache=str(cache)))
    workload, device = Workload("kernel_tuner", "toy_kernel", {"problem_size": [1024, 1024]}), resolve_device("a4000")
    config = next(iter(backend.search_space(workload, device)))
    in_thread = backend.measure(workload, device, config)
    with make_measurer(backend, "process", registry) as measurer:
        assert measurer.spec.entry_points is False
        in_worker = measurer.measure(workload, device, config, 60.0)
    assert in_worker == in_thread and in_worker.kind is MeasurementKind.REPLAYED


def test_a_bad_isolation_setting_names_the_file_the_key_and_the_allowed_values(run_amk, tmp_path):
    (tmp_path / "amk.toml").write_text('[tune]\nisolation = "fork"\n')
    out = run_amk("tune", "--workload", "toy:t", "--device", "h100", "--budget", "1")
    assert out.returncode == 1
    assert "amk.toml" in out.stderr and "isolation" in out.stderr and "fork" in out.stderr
    assert "['auto', 'process', 'thread']" in out.stderr


def test_amk_tune_isolation_process_runs_a_plugin_backend_in_a_worker(run_amk, site, tmp_path):
    out = run_amk("tune", "--workload", "toy:t", "--device", "h100", "--backend", BACKEND_NAME,
                  "--backend-option", "segfault_at=0", "--isolation", "process", "--policy", "prior",
                  "--budget", "3", "--json", env=amk_env([str(site)]))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["isolation"] == "process" and report["evaluations"] == 3
    assert report["verdicts"] == {"PASS": 2, "CRASH": 1}
    records = [json.loads(line) for line in (tmp_path / ".amk" / "corpus.jsonl").read_text().splitlines()]
    crashed = [r for r in records if r["measurement"]["verdict"] == "CRASH"]
    assert [r["config"] for r in crashed] == [{"x": 0}] and "SIGSEGV" in crashed[0]["measurement"]["reason"]


def test_simulate_replays_in_this_process_even_when_the_config_asks_for_process_isolation(tmp_path):
    from amk.simulate import simulate
    from tests.tune_helpers import write_cache

    folder = tmp_path / "caches"
    folder.mkdir()
    write_cache(folder / "A4000.json", device_name="NVIDIA RTX A4000", best_block=32)
    write_cache(folder / "A6000.json", device_name="NVIDIA RTX A6000", best_block=32, device_factor=0.7)
    rows = simulate(folder, budget=12, seeds=1, strategies=["amk"],
                    settings=TuneSettings(isolation="process", policy="prior"))
    assert {r.device for r in rows} == {"a4000", "a6000"}
    assert all(r.evals_to_5pct is not None for r in rows)  # replayed configs PASSed, none CRASHed
