"""``amk warm-start``, ``amk rank`` and ``amk evaluate`` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from amk.stores.jsonl import JsonlStore
from tests.conftest import amk_env
from tests.prior_helpers import grid_configs, landscape_records


@pytest.fixture
def store_dir(tmp_path):
    JsonlStore(JsonlStore.Options(path=str(tmp_path / "c.jsonl"))).append(landscape_records())
    return tmp_path


def test_warm_start_prints_the_best_configs_with_their_origin(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "warm-start", "--workload", "kernel_tuner:conv",
                  "--problem-size", "4096,4096", "--device", "NVIDIA A100-PCIE-40GB", "-k", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("#1 100.000 us") and "from a100#" in lines[0]
    assert json.loads(lines[1]) == {"bx": 64, "shmem": 1, "tile": 3}


def test_warm_start_json_lists_seeds_best_first(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "warm-start", "--workload", "kernel_tuner:conv",
                  "--problem-size", "4096,4096", "--device", "a4000", "--json")
    seeds = json.loads(out.stdout)
    assert len(seeds) == 3 and [s["device"] for s in seeds] == ["a4000"] * 3
    assert seeds[0]["latency_us"] <= seeds[1]["latency_us"] <= seeds[2]["latency_us"]


def test_warm_start_with_nothing_usable_says_it_is_a_cold_start(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "warm-start", "--workload", "kernel_tuner:other", "--device", "a100")
    assert out.returncode == 0 and out.stdout == "" and "cold start" in out.stderr
    assert "transfers to kernel_tuner:other" in out.stderr


def test_a_workload_without_a_kind_is_a_usage_error(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "warm-start", "--workload", "conv", "--device", "a100")
    assert out.returncode == 2 and "must be KIND:NAME" in out.stderr and "Traceback" not in out.stderr


def test_an_unknown_decode_shape_key_is_refused(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "warm-start", "--workload", "decode:m", "--shape", "hiden=2048",
                  "--device", "h100")
    assert out.returncode == 2 and "'hiden'" in out.stderr


def test_warm_start_help_documents_how_to_name_a_workload():
    out = subprocess.run([sys.executable, "-m", "amk", "warm-start", "--help"], env=amk_env(),
                         capture_output=True, text=True, check=False)
    assert "--workload kernel_tuner:convolution_kernel --problem-size 4096,4096" in out.stdout
    assert "--workload decode:NAME --shape hidden=2048" in out.stdout


def test_rank_orders_a_candidates_file_best_first(run_amk, store_dir):
    configs = grid_configs()
    (store_dir / "cands.json").write_text(json.dumps(configs))
    out = run_amk("--store", "jsonl:c.jsonl", "rank", "cands.json", "--workload", "kernel_tuner:conv",
                  "--problem-size", "4096,4096", "--device", "a100", "--json")
    assert out.returncode == 0, out.stderr
    ranked = json.loads(out.stdout)
    assert sorted(r["index"] for r in ranked) == list(range(len(configs)))
    assert [r["score"] for r in ranked] == sorted(r["score"] for r in ranked)
    assert ranked[0]["config"]["shmem"] == 1


def test_rank_without_the_problem_size_the_corpus_measured_says_the_kernels_data_is_not_used(run_amk, store_dir):
    (store_dir / "cands.json").write_text(json.dumps(grid_configs()))
    out = run_amk("--store", "jsonl:c.jsonl", "rank", "cands.json", "--workload", "kernel_tuner:conv",
                  "--device", "a100")
    assert out.returncode == 0, out.stderr
    assert 'only with shapes of another form ({"problem_size": [4096, 4096]}; given: none)' in out.stderr
    assert "--problem-size" in out.stderr


def test_rank_on_a_device_amk_does_not_know_says_devices_cannot_be_weighed(run_amk, store_dir):
    (store_dir / "cands.json").write_text(json.dumps(grid_configs()))
    out = run_amk("--store", "jsonl:c.jsonl", "rank", "cands.json", "--workload", "kernel_tuner:conv",
                  "--problem-size", "4096,4096", "--device", "a1000")
    assert out.returncode == 0, out.stderr
    assert "device 'a1000' is not one amk knows" in out.stderr and "h100" in out.stderr


def test_rank_reads_json_lines_and_keeps_the_order_of_an_untrained_prior(run_amk, tmp_path):
    (tmp_path / "cands.jsonl").write_text('{"bx": 1}\n{"bx": 2}\n')
    out = run_amk("--store", "jsonl:empty.jsonl", "rank", "cands.jsonl", "--workload", "kernel_tuner:conv",
                  "--device", "a100")
    assert out.returncode == 0
    assert "untrained" in out.stderr
    rows = out.stdout.splitlines()[1:]  # under the header
    assert ['{"bx": 1}' in rows[0], '{"bx": 2}' in rows[1]] == [True, True]


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("\n  \n", "empty"), ("[ ]", "an empty array")])
def test_rank_of_a_file_without_candidates_is_an_error_not_an_empty_table(run_amk, tmp_path, text, what):
    (tmp_path / "cands.json").write_text(text)
    out = run_amk("--store", "jsonl:empty.jsonl", "rank", "cands.json", "--workload", "kernel_tuner:conv",
                  "--device", "a100")
    assert out.returncode == 1 and out.stdout == ""
    assert f"cands.json: {what}: there are no candidates to rank" in out.stderr


def test_rank_names_the_line_of_a_bad_candidate(run_amk, tmp_path):
    (tmp_path / "cands.jsonl").write_text('{"bx": 1}\n[1, 2]\n')
    out = run_amk("--store", "jsonl:empty.jsonl", "rank", "cands.jsonl", "--workload", "kernel_tuner:conv",
                  "--device", "a100")
    assert out.returncode == 1 and "cands.jsonl:2" in out.stderr


def test_evaluate_writes_the_per_group_results_as_json(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "evaluate", "--ranker", "knn", "--json", "eval.json")
    assert out.returncode == 0, out.stderr
    rows = json.loads((store_dir / "eval.json").read_text())
    assert {r["ranker"] for r in rows} == {"knn", "pooled-replay"}
    assert {r["heldout"] for r in rows} == {"a100", "a4000", "a6000"}
    for key in ("top1", "top5", "top20", "spearman", "ndcg10", "evals_to_5pct"):
        assert all(key in r for r in rows)
    assert "pooled-replay" in out.stdout and "knn" in out.stdout


def test_evaluate_split_all_holds_out_devices_workloads_and_targets(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "evaluate", "--ranker", "knn", "--split", "all", "--json", "e.json")
    assert out.returncode == 0, out.stderr
    rows = json.loads((store_dir / "e.json").read_text())
    # One workload in this store: holding it out leaves nothing to train on, so that fold is left out.
    assert {r["split"] for r in rows} == {"device", "target"}
    targets = {r["heldout"] for r in rows if r["split"] == "target"}
    assert targets == {f"kernel_tuner:conv on {d}" for d in ("a100", "a4000", "a6000")}


def test_evaluate_an_empty_store_is_a_clear_error(run_amk, tmp_path):
    out = run_amk("--store", "jsonl:empty.jsonl", "evaluate", "--ranker", "knn")
    assert out.returncode == 1 and "nothing to evaluate" in out.stderr


def test_evaluate_an_unknown_ranker_lists_the_known_ones(run_amk, store_dir):
    out = run_amk("--store", "jsonl:c.jsonl", "evaluate", "--ranker", "nope")
    assert out.returncode == 2 and "knn" in out.stderr  # a usage error


def test_importing_amk_and_its_registry_loads_no_heavy_library():
    code = ("import sys, amk.cli; from amk.core.plugins import get_registry; get_registry(); "
            "print([m for m in ('sklearn', 'lightgbm', 'torch', 'psycopg') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], env=amk_env(), capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "[]", out.stderr
