"""The ``command`` backend: a real program, built by gcc with -D flags from the knobs, tuned end to end by
``amk tune``; its output read as JSON or by a regex; each way a run can end gets its verdict."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from amk.backends.command import CommandBackend, read_space_file
from amk.core.devices import Device
from amk.core.errors import BackendError, InvalidConfigError, ValidationError
from amk.core.records import Verdict
from amk.core.space import SearchSpace
from amk.core.workload import Workload

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the program it tunes")

# Sums N floats in blocks of BX, UNROLL accumulators per block, and prints its time as JSON; exits 1 when
# the sum is wrong. BX=3 forgets the tail (a real wrong answer), BX=5 spins forever, BX=7 reads NULL.
BENCH_C = r"""
#include <stdio.h>
#include <time.h>
#define N 200000
static float data[N];
int main(void) {
    for (int i = 0; i < N; i++) data[i] = (float)(i % 7);
    double expected = 0;
    for (int i = 0; i < N; i++) expected += data[i];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double total = 0;
#if BX == 5
    volatile int spin = 1; while (spin) {}
#endif
#if BX == 7
    total += *(volatile float *)0;
#endif
    int limit = (BX == 3) ? N - N % 1024 - 1 : N;
    for (int b = 0; b < limit; b += BX) {
        float acc[UNROLL] = {0};
        int end = b + BX < limit ? b + BX : limit, i = b;
        for (; i + UNROLL <= end; i += UNROLL)
            for (int u = 0; u < UNROLL; u++) acc[u] += data[i + u];
        for (; i < end; i++) acc[0] += data[i];
        for (int u = 0; u < UNROLL; u++) total += acc[u];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("{\"time\": %.6f, \"sum\": %.1f}\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6, total);
    return total == expected ? 0 : 1;
}
"""

SPACE_TOML = """\
restrictions = ["bx * unroll <= 64", "unroll == 1 or bx not in (3, 5, 7)"]

[tune_params]
bx = [1, 3, 5, 7, 16, 64]
unroll = [1, 4]
"""
ALLOWED = [(1, 1), (1, 4), (3, 1), (5, 1), (7, 1), (16, 1), (16, 4), (64, 1)]
EXPECTED = {(3, 1): "FAIL", (5, 1): "TIMEOUT", (7, 1): "CRASH"}

AMK_TOML = """\
[store]
path = "corpus.jsonl"

[backend]
name = "command"
space = "space.toml"
build = "gcc -O1 -DBX={bx} -DUNROLL={unroll} bench.c -o bench_{bx}_{unroll}"
command = "./bench_{bx}_{unroll}"
timeout_s = 1

[tune]
timeout_s = 60
ab_rounds = 2
policy = "prior"  # the order does not matter here: the run measures every config
"""
TARGET = ["--workload", "bench:blocked-sum", "--shape", "n=200000", "--device", "testbox"]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_gcc
def test_a_compiled_program_is_tuned_end_to_end_every_config_with_its_verdict_and_warm_starts_the_next_run(
        run_amk, tmp_path):
    (tmp_path / "bench.c").write_text(BENCH_C)
    (tmp_path / "space.toml").write_text(SPACE_TOML)
    (tmp_path / "amk.toml").write_text(AMK_TOML)

    first = run_amk("tune", *TARGET, "--budget", "20", "--json", timeout=120)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["isolation"] == "process" and report["evaluations"] == len(ALLOWED)
    records = _records(tmp_path / "corpus.jsonl")
    candidates = {(r["config"]["bx"], r["config"]["unroll"]): r for r in records
                  if r["provenance"]["extra"]["role"] == "candidate"}
    assert sorted(candidates) == sorted(ALLOWED)  # every allowed config once, no restricted one
    verdicts = {c: r["measurement"]["verdict"] for c, r in candidates.items()}
    assert verdicts == {c: EXPECTED.get(c, "PASS") for c in ALLOWED}
    reasons = {c: r["measurement"]["reason"] for c, r in candidates.items()}
    assert "exited with code 1" in reasons[3, 1]
    assert "past timeout_s=1 s" in reasons[5, 1] and "process group was killed" in reasons[5, 1]
    assert "signal 11 (SIGSEGV)" in reasons[7, 1]
    assert report["verdicts"] == {"CRASH": 1, "FAIL": 1, "PASS": 5, "TIMEOUT": 1}
    # Nothing lost: the store holds exactly what the run measured, A/B re-measurements included.
    assert report["measurements"] == len(records)
    assert all(r["measurement"]["kind"] == "measured" and r["device"]["name"] == "testbox" for r in records)

    second = run_amk("tune", *TARGET, "--budget", "2", "--json", timeout=120)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    first_run = report["run_id"]
    assert again["warm_start"] and all(f"amk tune {first_run} " in s for s in again["warm_start"])
    passed = {c for c, v in verdicts.items() if v == "PASS"}
    new = [r for r in _records(tmp_path / "corpus.jsonl") if r["provenance"]["extra"]["run"] == again["run_id"]
           and r["provenance"]["extra"]["role"] == "candidate"]
    assert {(r["config"]["bx"], r["config"]["unroll"]) for r in new} <= passed  # the seeds: configs that passed
    assert again["best"]["latency_us"] < max(candidates[c]["measurement"]["latency_us"] for c in passed)


def test_the_remeasure_note_counts_what_the_corpus_held_and_is_not_said_on_a_first_run(run_amk, tmp_path):
    (tmp_path / "space.toml").write_text("[tune_params]\nx = [1, 2]\n")
    (tmp_path / "amk.toml").write_text('[backend]\nname = "command"\nspace = "space.toml"\n'
                                       'command = "echo time={x}"\npattern = "time=([0-9]+)"\n')
    target = ["tune", "--workload", "bench:echo", "--device", "testbox", "--isolation", "thread", "--budget", "1"]
    first = run_amk(*target)
    assert first.returncode == 0, first.stderr
    assert "measured again" not in first.stderr  # the corpus held nothing of this target
    second = run_amk(*target)
    assert second.returncode == 0, second.stderr
    assert "the corpus held 1 measured record(s) of this workload on this device" in second.stderr


# -- one measurement at a time, in this process -------------------------------------------------------
WORKLOAD = Workload("bench", "demo", {"n": 8})
DEVICE = Device("testbox")


def _backend(tmp_path: Path, space: str = 'restrictions = []\n[tune_params]\nx = [1, 2, 3]\n', **options):
    (tmp_path / "space.toml").write_text(space)
    return CommandBackend(CommandBackend.Options(**{"space": str(tmp_path / "space.toml"), "cwd": str(tmp_path),
                                                    **options}))


def test_a_json_line_with_a_list_of_repeats_gives_their_median_and_spread_in_us(tmp_path):
    backend = _backend(tmp_path, command="""sh -c 'echo progress; echo "{{\\"time\\": [1, 2, 3, 10]}}"'""")
    m = backend.measure(WORKLOAD, DEVICE, {"x": 1})
    assert m.verdict is Verdict.PASS and m.latency_us == 2500.0 and m.samples == 4 and m.spread_us > 0


def test_a_regex_reads_the_number_and_its_unit_from_the_output(tmp_path):
    backend = _backend(tmp_path, command="echo 'kernel took 250 us (n={n}, x={x})'",
                       pattern=r"took (?P<time>[0-9.]+) (?P<unit>\w+)", repeats=3, warmup=1)
    m = backend.measure(WORKLOAD, DEVICE, {"x": 2})
    assert m.verdict is Verdict.PASS and m.latency_us == 250.0 and m.samples == 3


def test_knobs_reach_the_program_as_arguments_and_environment_variables(tmp_path):
    backend = _backend(tmp_path, command="""sh -c 'echo "{{\\"time\\": $((X_KNOB * {n}))}}"'""",
                       env={"X_KNOB": "{x}"}, unit="us")
    assert backend.measure(WORKLOAD, DEVICE, {"x": 3}).latency_us == 24.0


def test_a_correctness_field_that_is_false_is_a_wrong_answer(tmp_path):
    backend = _backend(tmp_path, command="""echo '{{"time": 1.5, "correct": false}}'""", correct_key="correct")
    m = backend.measure(WORKLOAD, DEVICE, {"x": 1})
    assert m.verdict is Verdict.FAIL and "correct=false" in m.reason


def test_output_without_a_latency_is_a_crash_that_says_what_was_expected(tmp_path):
    m = _backend(tmp_path, command="echo 'done in no time'").measure(WORKLOAD, DEVICE, {"x": 1})
    assert m.verdict is Verdict.CRASH and "'time' (time_key)" in m.reason and "done in no time" in m.reason
    m = _backend(tmp_path, command="""echo '{{"time": -3}}'""").measure(WORKLOAD, DEVICE, {"x": 1})
    assert m.verdict is Verdict.CRASH and "positive, finite" in m.reason


def test_a_build_that_fails_is_a_fail_and_is_retried_on_the_next_measurement(tmp_path):
    backend = _backend(tmp_path, build="sh -c 'echo cannot compile x={x} >&2; exit 2'", command="true")
    m = backend.measure(WORKLOAD, DEVICE, {"x": 1})
    assert m.verdict is Verdict.FAIL and "the build exited with code 2" in m.reason and "cannot compile x=1" in m.reason


def test_a_timeout_kills_the_programs_whole_process_group(tmp_path):
    backend = _backend(tmp_path, command="sh -c 'sleep 30 & echo $! > child; exec sleep 30'", timeout_s=0.5)
    m = backend.measure(WORKLOAD, DEVICE, {"x": 1})
    assert m.verdict is Verdict.TIMEOUT
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[1].startswith("Z"))  # a zombie is dead


def test_a_config_outside_the_space_is_refused(tmp_path):
    backend = _backend(tmp_path, command="true")
    with pytest.raises(InvalidConfigError, match="x=9 is not one of"):
        backend.measure(WORKLOAD, DEVICE, {"x": 9})


def test_a_template_naming_neither_a_knob_nor_a_shape_entry_is_refused_before_tuning(tmp_path):
    backend = _backend(tmp_path, command="./bench --tile {tile}")
    with pytest.raises(BackendError, match=r"names \['tile'\], which are neither knobs"):
        backend.search_space(WORKLOAD, DEVICE)
    with pytest.raises(BackendError, match="no indexing or attributes"):
        _backend(tmp_path, command="./bench {x.__class__}").search_space(WORKLOAD, DEVICE)


@pytest.mark.parametrize(("options", "message"), [
    ({"command": './bench "--x={x}'}, r"cannot be split into arguments \(No closing quotation\); fix its quotes"),
    ({"command": "./bench", "build": "gcc 'a.c"}, r"template \"gcc 'a.c\" cannot be split"),
    ({"command": "./bench", "cwd": "no/such/dir"}, r"cwd 'no/such/dir' is no directory here"),
])
def test_a_mistake_every_config_would_fail_on_is_one_error_before_the_run(tmp_path, options, message):
    with pytest.raises(BackendError, match=message):  # not one CRASH record per config
        _backend(tmp_path, **options).search_space(WORKLOAD, DEVICE)


@pytest.mark.parametrize(("text", "message"), [
    ('[tune_params]\nx = []\n', "non-empty list of choices"),
    ('restrictions = ["x < y"]\n[tune_params]\nx = [1]\n', r"names \['y'\], which are not knobs"),
    ('[tune_params]\nx = [1]\n[other]\na = 1\n', r"unknown key\(s\) \['other'\]"),
    ('tune_params = 3\n', "must map each knob"),
])
def test_a_bad_space_file_is_an_error_naming_the_file_and_the_fault(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(BackendError, match=message) as caught:
        read_space_file(path)
    assert str(path) in str(caught.value)


def test_a_json_space_file_reads_like_a_toml_one(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"tune_params": {"bx": [16, 32, 64], "dtype": ["f32", "f16"]},
                                "restrictions": ["bx < 64 or dtype == 'f16'"], "defaults": {"bx": 32}}))
    space = read_space_file(path)
    assert space.default_config == {"bx": 32, "dtype": "f32"}
    assert list(space) == [{"bx": 16, "dtype": "f32"}, {"bx": 16, "dtype": "f16"}, {"bx": 32, "dtype": "f32"},
                           {"bx": 32, "dtype": "f16"}, {"bx": 64, "dtype": "f16"}]


# -- restrictions are evaluated safely ----------------------------------------------------------------
def test_restrictions_are_evaluated_without_eval_and_refuse_what_is_not_an_expression_over_knobs():
    with pytest.raises(ValidationError, match="not knobs"):
        SearchSpace.from_tune_params({"x": [1, 2]}, ["__import__('os').system('true')"])
    with pytest.raises(ValidationError, match="not an expression"):
        SearchSpace.from_tune_params({"x": [1, 2]}, ["import os"])
    space = SearchSpace.from_tune_params({"x": [1, 2]}, ["x.__class__ is int"])
    with pytest.raises(ValidationError, match="raised"):
        list(space)


def test_a_restriction_that_raises_on_a_config_names_itself_and_the_config():
    space = SearchSpace.from_tune_params({"n": [8], "b": [0, 2]}, ["n % b == 0"])
    with pytest.raises(ValidationError, match=r"'n % b == 0' raised ZeroDivisionError .* \{'n': 8, 'b': 0\}"):
        list(space)
    guarded = SearchSpace.from_tune_params({"n": [8], "b": [0, 2]}, ["b > 0 and n % b == 0"])
    assert list(guarded) == [{"n": 8, "b": 2}]


def test_a_restriction_may_be_a_callable_over_the_config_as_in_kernel_tuner():
    space = SearchSpace.from_tune_params({"x": [1, 2, 3, 4]}, [lambda c: c["x"] % 2 == 0, "x > 2"])
    assert list(space) == [{"x": 4}]


# -- the local device ---------------------------------------------------------------------------------
NVIDIA_SMI = """#!/bin/sh
echo "0, GPU-1111aaaa-0000, NVIDIA H100 80GB HBM3"
echo "1, GPU-2222bbbb-0000, NVIDIA A100-PCIE-40GB"
"""


@pytest.mark.parametrize(("visible", "expected"), [
    (None, "h100"), ("1", "a100"), ("GPU-2222bbbb", "a100"), ("1,0", "a100"), ("", "cpu-"), ("-1", "cpu-"),
])
def test_the_local_device_is_the_first_visible_gpu_else_the_cpu(tmp_path, monkeypatch, visible, expected):
    # nvidia-smi cannot run on a machine without a GPU: a script prints what it prints there.
    smi = tmp_path / "nvidia-smi"
    smi.write_text(NVIDIA_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert CommandBackend().local_device().name.startswith(expected)


def test_without_nvidia_smi_the_local_device_is_this_machines_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    from amk.backends.cpu import local_cpu_device

    assert CommandBackend().local_device().name == local_cpu_device().name
