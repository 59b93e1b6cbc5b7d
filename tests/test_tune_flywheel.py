"""Defaults that keep the flywheel turning: each run of a target starts where the corpus left off, a
deterministic backend never evaluates a config twice, Ctrl-C keeps the run and says how to resume it,
and every run keeps its report."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
from conftest import amk_env
from tune_helpers import ToyBackend, toy_workload, write_cache

from amk.core.devices import resolve_device
from amk.stores.memory import MemoryStore
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings
from amk.tuning.target import TuneTarget

# The README's main job (the prior-order policy: these tests are about what a run reuses, not how it
# searches, and it spares each run importing scikit-learn).
MAIN_JOB = ["--workload", "decode:llama-1b", "--shape",
            "hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256",
            "--device", "h100", "--policy", "prior"]


def _candidates(path: Path) -> dict[str, set[str]]:
    """Run id -> the configs its candidate records hold."""
    runs: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        extra = record["provenance"]["extra"]
        if extra.get("role") == "candidate":
            runs.setdefault(extra["run"], set()).add(json.dumps(record["config"], sort_keys=True))
    return runs


def test_a_second_and_third_roofline_run_evaluate_only_configs_the_corpus_does_not_hold(run_amk, tmp_path):
    reports = []
    for _ in range(3):
        out = run_amk("tune", *MAIN_JOB, "--budget", "6", "--json")
        assert out.returncode == 0, out.stderr
        reports.append(json.loads(out.stdout))
    runs = _candidates(tmp_path / ".amk" / "corpus.jsonl")
    first, second, third = (runs[r["run_id"]] for r in reports)
    assert len(first) == len(second) == len(third) == 6
    assert not first & second and not third & (first | second)
    assert [r["known_from_corpus"] for r in reports] == [0, 6, 12]
    assert reports[2]["best"]["latency_us"] <= reports[1]["best"]["latency_us"] <= reports[0]["best"]["latency_us"]


def test_a_second_replay_run_starts_at_the_first_runs_best_without_extra_flags(run_amk, tmp_path):
    cache = write_cache(tmp_path / "A100.json", device_name="NVIDIA A100-PCIE-40GB", best_block=32)
    args = ["tune", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024", "--device", "a100",
            "--backend", "replay", "--backend-option", f"cache={cache}", "--budget", "3", "--policy", "prior", "--json"]
    first = json.loads(run_amk(*args).stdout)
    out = run_amk(*args)
    assert out.returncode == 0, out.stderr
    second = json.loads(out.stdout)
    assert second["known_from_corpus"] == 3 and second["known_best_us"] == first["best"]["latency_us"]
    assert all(best <= first["best"]["latency_us"] for _, best in second["best_so_far"])
    runs = _candidates(tmp_path / ".amk" / "corpus.jsonl")
    assert not runs[first["run_id"]] & runs[second["run_id"]]


class MeasuredToy(ToyBackend):
    name = "measured-toy"


def _target(store, backend):
    settings = TuneSettings(policy="prior", warm_start=0, isolation="thread")
    target = TuneTarget.prepare(toy_workload(), resolve_device("a100"), backend, store.columns(), settings)
    return target, settings


def test_a_measuring_backend_measures_known_configs_again_unless_remeasure_is_false():
    store = MemoryStore()
    backend = MeasuredToy(MeasuredToy.Options(kind="measured", n=6))
    target, settings = _target(store, backend)
    tune(target, attrs.evolve(settings, ab_rounds=0), budget=6, store=store)
    assert sorted(backend.calls) == [0, 1, 2, 3, 4, 5]
    again = tune(target, attrs.evolve(settings, ab_rounds=0), budget=6, store=store)
    assert len(again.state.trials) == 6 and again.state.known == 0  # the default: measured again
    backend.calls.clear()
    skipped = tune(target, attrs.evolve(settings, ab_rounds=0, remeasure=False), budget=6, store=store)
    assert backend.calls == [] and skipped.state.known == 6
    assert skipped.state.stop_reason == "every config of the search space was evaluated or taken from the corpus"
    assert skipped.best_config() == {"x": 5}  # the best the corpus holds (latency 100 + (5 - 7)^2)


def test_the_best_so_far_curve_ends_at_the_reported_best_when_an_ab_test_sets_the_incumbent():
    store = MemoryStore()
    backend = MeasuredToy(MeasuredToy.Options(kind="measured", n=12, noise=0.02))
    target, settings = _target(store, backend)
    result = tune(target, attrs.evolve(settings, ab_rounds=3, ab_noise=0.0), budget=12, store=store)
    assert any(t.kept_us is not None for t in result.state.trials), "no A/B median differed from its measurement"
    assert result.best_so_far()[-1][1] == result.state.incumbent_us


def _start_tune(tmp_path: Path, *extra: str) -> subprocess.Popen:
    # SIGINT back to its default in the child: a parent that ignores it (a background job) would pass that on.
    return subprocess.Popen([sys.executable, "-m", "amk", "tune", *MAIN_JOB, *extra], cwd=tmp_path,
                            env=amk_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # noqa: PLW1509 (one signal call in the child)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_the_run_prints_the_best_so_far_and_the_command_that_resumes_it(tmp_path):
    proc = _start_tune(tmp_path, "--budget", "500")
    seen = ""
    while " 3/500 " not in seen:  # one progress line per evaluation on a pipe
        line = proc.stderr.readline()
        assert line, f"amk tune ended before its third evaluation: {seen}"
        seen += line
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "best so far: " in err and "us (predicted)" in err
    assert "record(s) appended to jsonl:" in err
    resume = next(line for line in err.splitlines() if line.startswith("resume with: "))
    argv = resume.removeprefix("resume with: ").split()
    assert argv[:2] == ["amk", "tune"] and argv[-1] == "--resume" and argv[-3:-1] == ["--budget", "500"]
    state = json.loads(next((tmp_path / ".amk" / "tune").glob("*.state.json")).read_text())
    assert state["stop_reason"] == "interrupted (Ctrl-C)" and len(state["trials"]) >= 3
    done = subprocess.run([sys.executable, "-m", "amk", *argv[1:-3], "--budget", str(len(state["trials"]) + 2),
                           "--resume", "--json"], cwd=tmp_path, env=amk_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["run_id"] == state["run_id"] and report["sessions"] == 2
    assert report["evaluations"] == len(state["trials"]) + 2


def test_each_run_keeps_its_report_and_amk_runs_lists_them_with_the_latest_marked(run_amk, tmp_path):
    ids = [json.loads(run_amk("tune", *MAIN_JOB, "--budget", "3", "--json").stdout)["run_id"] for _ in range(2)]
    [folder] = (tmp_path / ".amk" / "tune").glob("*/")
    assert {p.name for p in folder.glob("*.report.json")} == {f"{i}.report.json" for i in ids} | {"latest.report.json"}
    assert json.loads((folder / "latest.report.json").read_text())["run_id"] == ids[1]
    assert (folder / "latest.best.png").resolve() == folder / f"{ids[1]}.best.png"
    out = run_amk("runs", "--workload", "decode:llama-1b")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if ids[0] in line or ids[1] in line]
    assert len(lines) == 2 and f"{ids[1]} *" in lines[1] and f"{ids[0]} *" not in lines[0]
    listed = json.loads(run_amk("runs", "--device", "h100", "--json").stdout)
    assert [r["run_id"] for r in listed] == ids and all(r["best_us"] > 0 for r in listed)
    none = run_amk("runs", "--backend", "roofine")
    assert none.returncode == 0 and "for these filters; the runs there are of workloads decode:llama-1b; " \
        "devices h100; backends roofline" in none.stderr


def test_after_ctrl_c_a_report_that_cannot_be_written_still_leaves_the_resume_command(monkeypatch, capsys, tmp_path):
    from types import SimpleNamespace

    import amk.tuning.report
    from amk.cli.tune_cmd import _report_interrupted
    from amk.core.errors import FileWriteError

    def full_disk(*args, **kwargs):
        raise FileWriteError("cannot write the tune report: No space left on device; free disk space.")

    monkeypatch.setattr(amk.tuning.report, "write_report", full_disk)
    monkeypatch.setattr("sys.argv", ["amk", "tune", "--workload", "decode:m"])
    state = SimpleNamespace(trials=[], run_id="r1", incumbent_us=None)
    _report_interrupted(SimpleNamespace(state=state, records=[]), "jsonl:c.jsonl", tmp_path / "s.json", None,
                        tmp_path, "stem")
    err = capsys.readouterr().err
    assert "the report could not be written" in err and "No space left" in err
    assert "resume with: amk tune --workload decode:m --resume" in err


def test_amk_runs_lists_a_damaged_report_as_unreadable_and_the_good_ones(run_amk, tmp_path):
    folder = tmp_path / ".amk" / "tune" / "target"
    folder.mkdir(parents=True)
    (folder / "a.report.json").write_text("[]")
    (folder / "b.report.json").write_text('{"run_id": 5}')
    (folder / "c.report.json").write_text('{"run_id": "c1", "workload": {"kind": "decode", "name": "m"}, '
                                          '"evaluations": 3, "finished_at": 1.0}')
    done = run_amk("runs")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "a.report.json: unreadable (a JSON list, not a report object)" in done.stderr
    assert "b.report.json: unreadable (its 'run_id' is 5, not a str)" in done.stderr
    assert "c1" in done.stdout and "decode:m" in done.stdout
