"""``amk tune`` and ``amk simulate`` end to end, through the real command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.tune_helpers import write_cache

DECODE = ["--workload", "decode:llama-1b", "--shape",
          "hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256"]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tune_with_the_default_roofline_backend_appends_predicted_records_and_writes_a_report(run_amk, tmp_path):
    out = run_amk("tune", *DECODE, "--device", "h100", "--budget", "12")
    assert out.returncode == 0, out.stderr
    records = _records(tmp_path / ".amk" / "corpus.jsonl")
    assert len(records) == 12
    assert {r["measurement"]["kind"] for r in records} == {"predicted"}
    assert all(r["config"]["kernel_knobs"] and r["measurement"]["bound_us"] for r in records)
    report = json.loads(next((tmp_path / ".amk" / "tune").glob("*/latest.report.json")).read_text())
    assert report["evaluations"] == 12 and report["backend"] == "roofline"
    assert len(report["best_so_far"]) == 12
    assert report["best"]["latency_us"] == min(r["measurement"]["latency_us"] for r in records)
    assert Path(report["plot"]).is_file() and Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_a_run_that_fails_before_it_starts_does_not_say_it_replaces_the_previous_runs_state(run_amk, tmp_path):
    assert run_amk("tune", *DECODE, "--device", "a100", "--budget", "2").returncode == 0
    (tmp_path / "not-a-file").mkdir()
    out = run_amk("--store", "jsonl:not-a-file", "tune", *DECODE, "--device", "a100", "--budget", "2")
    assert out.returncode == 1 and "amk: error:" in out.stderr
    assert "is replaced" not in out.stderr
    again = run_amk("tune", *DECODE, "--device", "a100", "--budget", "2")
    assert again.returncode == 0 and "a new run starts; the previous run's state" in again.stderr


def test_tune_resume_continues_a_finished_run_to_a_larger_budget(run_amk, tmp_path):
    assert run_amk("tune", *DECODE, "--device", "a100", "--budget", "5").returncode == 0
    out = run_amk("tune", *DECODE, "--device", "a100", "--budget", "9", "--resume", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["evaluations"] == 9 and report["sessions"] == 2
    records = _records(tmp_path / ".amk" / "corpus.jsonl")
    assert len({json.dumps(r["config"], sort_keys=True) for r in records}) == len(records) == 9


@pytest.mark.parametrize(("change", "says"), [
    (["--store", "jsonl:other.jsonl"], (r"the store: the run's records are in jsonl:\S*/\.amk/corpus\.jsonl, this "
                                        r"call's store is jsonl:\S*/other\.jsonl")),
    (["--backend-option", "layers=4"], r"the backend option layers: 0 then, 4 now"),
])
def test_tune_resume_against_another_store_or_backend_option_is_refused_saying_what_differs(run_amk, change, says):
    assert run_amk("tune", *DECODE, "--device", "a100", "--budget", "3").returncode == 0
    store, options = (change, []) if change[0] == "--store" else ([], change)
    out = run_amk(*store, "tune", *DECODE, "--device", "a100", *options, "--budget", "6", "--resume")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert re.search(says, " ".join(out.stderr.split())) and "start a new run without --resume" in out.stderr


def test_tune_resume_with_the_store_named_by_its_absolute_path_goes_on(run_amk, tmp_path):
    assert run_amk("tune", *DECODE, "--device", "a100", "--budget", "3").returncode == 0
    out = run_amk("--store", f"jsonl:{tmp_path / '.amk' / 'corpus.jsonl'}", "tune", *DECODE, "--device", "a100",
                  "--budget", "5", "--resume", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["evaluations"] == 5


def test_tune_resume_without_a_previous_run_is_an_error_that_says_what_to_do(run_amk):
    out = run_amk("tune", *DECODE, "--device", "h100", "--budget", "5", "--resume")
    assert out.returncode == 1
    assert "run without --resume" in out.stderr and "Traceback" not in out.stderr


def test_tune_replays_a_kernel_tuner_cache_with_the_other_devices_as_corpus(run_amk, tmp_path):
    a = write_cache(tmp_path / "A4000.json", device_name="NVIDIA RTX A4000", best_block=32)
    b = write_cache(tmp_path / "A100.json", device_name="NVIDIA A100-PCIE-40GB", best_block=32)
    assert run_amk("corpus", "import", str(a)).returncode == 0
    out = run_amk("tune", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024", "--device", "a100",
                  "--backend", "replay", "--backend-option", f"cache={b}", "--budget", "3", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # The other device measured this very workload: its zero-shot order seeds the run.
    assert report["warm_start"][0].startswith("#1 of the zero-shot order (mean relative latency on a4000")
    assert report["best"]["config"] == {"block_size_x": 32, "tile_size_x": 2}
    replayed = [r for r in _records(tmp_path / ".amk" / "corpus.jsonl") if r["device"]["name"] == "a100"]
    assert len(replayed) == 3 and {r["measurement"]["kind"] for r in replayed} == {"replayed"}


def test_tune_resume_with_the_replay_file_named_by_another_path_to_it_goes_on(run_amk, tmp_path):
    write_cache(tmp_path / "A100.json", device_name="NVIDIA A100-PCIE-40GB")
    target = ["tune", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024", "--device", "a100",
              "--backend", "replay"]
    assert run_amk(*target, "--backend-option", "cache=A100.json", "--budget", "2").returncode == 0
    out = run_amk(*target, "--backend-option", f"cache={tmp_path / 'A100.json'}", "--budget", "4", "--resume",
                  "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["evaluations"] == 4
    write_cache(tmp_path / "B.json", device_name="NVIDIA A100-PCIE-40GB")  # same content, another file
    other = run_amk(*target, "--backend-option", "cache=B.json", "--budget", "6", "--resume")
    assert other.returncode == 1 and "the backend option cache" in other.stderr


def test_tune_names_a_bad_workload_option_as_a_usage_error_without_a_traceback(run_amk):
    out = run_amk("tune", "--workload", "nocolon", "--device", "h100")
    assert out.returncode == 2 and "KIND:NAME" in out.stderr and "Traceback" not in out.stderr


@pytest.fixture
def cache_dir(tmp_path):
    """Three devices of one toy kernel: one file with an empty device_name, an integer problem size."""
    folder = tmp_path / "caches"
    folder.mkdir()
    write_cache(folder / "A4000.json", device_name="NVIDIA RTX A4000", problem_size=1000, best_block=32)
    write_cache(folder / "A6000.json.gz", device_name="NVIDIA RTX A6000", problem_size=1000, best_block=32,
                device_factor=0.7)
    write_cache(folder / "mystery-gpu.json", device_name="", problem_size=1000, best_block=64, device_factor=0.5)
    return folder


def test_simulate_scores_every_strategy_on_every_held_out_device(run_amk, cache_dir, tmp_path):
    out = run_amk("simulate", "--caches", str(cache_dir), "--budget", "12", "--seeds", "2",
                  "--json", str(tmp_path / "rows.json"))
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    from amk.simulate import default_strategies

    assert {(r["device"], r["strategy"]) for r in rows} == {
        (d, s) for d in ("a4000", "a6000", "mystery-gpu") for s in default_strategies()}
    for row in rows:
        assert {"kernel", "device", "strategy", "evals_to_5pct", "evals_to_1pct", "score"} <= set(row)
        assert row["kernel"] == "caches"
    random = next(r for r in rows if r["strategy"] == "random" and r["device"] == "a4000")
    assert random["evals_to_5pct"] == pytest.approx((12 + 1) / (1 + 1))  # one good config of 12
    assert "replayed" in out.stdout


def test_simulate_reads_one_sub_folder_per_kernel(run_amk, tmp_path):
    for kernel in ("k1", "k2"):
        folder = tmp_path / "all" / kernel
        folder.mkdir(parents=True)
        write_cache(folder / "A4000.json", device_name="NVIDIA RTX A4000", kernel=kernel)
        write_cache(folder / "A100.json", device_name="NVIDIA A100-PCIE-40GB", kernel=kernel)
    out = run_amk("simulate", "--caches", str(tmp_path / "all"), "--budget", "5", "--seeds", "1",
                  "--strategy", "amk", "--strategy", "pooled", "--json", str(tmp_path / "rows.json"))
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(r["kernel"], r["device"]) for r in rows} == {(k, d) for k in ("k1", "k2") for d in ("a4000", "a100")}


def test_simulate_refuses_a_folder_of_two_kernels_instead_of_taking_one_for_another_device(run_amk, tmp_path):
    write_cache(tmp_path / "A4000.json", device_name="NVIDIA RTX A4000", kernel="k1")
    write_cache(tmp_path / "A100.json", device_name="NVIDIA A100-PCIE-40GB", kernel="k1")
    write_cache(tmp_path / "H100.json", device_name="NVIDIA H100 80GB HBM3", kernel="k2")
    out = run_amk("simulate", "--caches", ".", "--budget", "3", "--seeds", "1", "--strategy", "random")
    assert out.returncode == 1
    assert "2 kernels (kernel_tuner:k1: A100.json, A4000.json; kernel_tuner:k2: H100.json)" in out.stderr
    assert "a sub-folder of its own" in out.stderr


def test_simulate_of_the_current_folder_names_its_kernel_says_the_entries_it_left_out_and_what_it_ran(
        run_amk, tmp_path):
    write_cache(tmp_path / "A4000.json", device_name="NVIDIA RTX A4000")
    cache = json.loads(write_cache(tmp_path / "A100.json", device_name="NVIDIA A100-PCIE-40GB").read_text())
    cache["cache"]["64,1"]["time"] = -1.0
    (tmp_path / "A100.json").write_text(json.dumps(cache))
    out = run_amk("simulate", "--caches", ".", "--budget", "3", "--seeds", "1", "--strategy", "random",
                  "--json", "rows.json")
    assert out.returncode == 0, out.stderr
    assert {r["kernel"] for r in json.loads((tmp_path / "rows.json").read_text())} == {tmp_path.name}
    assert "A100.json: 1 entry that could not be read left out of the simulation (the first: A100.json#64,1" \
        in out.stderr
    assert "amk was not among the strategies" in out.stdout and "amk needed" not in out.stdout


def test_simulate_on_a_folder_without_caches_says_what_it_needs(run_amk, tmp_path):
    (tmp_path / "empty").mkdir()
    out = run_amk("simulate", "--caches", str(tmp_path / "empty"))
    assert out.returncode == 1 and "no Kernel Tuner cache files" in out.stderr


def test_the_tune_section_of_the_config_sets_the_loop_and_unknown_keys_are_named(run_amk, tmp_path):
    (tmp_path / "amk.toml").write_text('[tune]\nbudget = 4\npolicy = "prior"\n')
    out = run_amk("tune", *DECODE, "--device", "h100", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["evaluations"] == 4 and json.loads(out.stdout)["policy"] == "prior"
    (tmp_path / "amk.toml").write_text("[tune]\nbudgit = 4\n")
    out = run_amk("tune", *DECODE, "--device", "h100")
    assert out.returncode == 1 and "budgit" in out.stderr


@pytest.mark.slow
def test_simulate_on_the_real_convolution_caches_beats_random_and_tpe_and_never_trails_pooled_replay(
        run_amk, shared_data, tmp_path):
    out = run_amk("simulate", "--caches", str(shared_data / "kernel_tuner" / "convolution"), "--budget", "300",
                  "--seeds", "2", "--strategy", "amk", "--strategy", "random", "--strategy", "pooled",
                  "--json", str(tmp_path / "rows.json"), timeout=900)
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    by = {(r["device"], r["strategy"]): r["evals_to_5pct"] for r in rows}
    for device in ("a100", "a4000", "a6000"):
        assert by[device, "amk"] is not None
        assert by[device, "amk"] < by[device, "random"]
        assert by[device, "pooled"] is None or by[device, "amk"] <= by[device, "pooled"]
    assert by["a100", "amk"] < 300 and by["a6000", "amk"] <= 2
