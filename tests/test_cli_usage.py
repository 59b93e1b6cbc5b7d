"""What the amk command prints and how it exits: global options anywhere, exit 2 for usage errors, errors
that name everything wrong at once, TOML one can paste back, tables as wide as their content, scores
that say what they mean, and -q."""

import json
import tomllib

import pytest
from tune_helpers import write_cache

from amk.simulate import SimulationRow, summarize

LLAMA_1B = "hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256"


def test_global_options_are_accepted_after_the_command_too(run_amk, tmp_path):
    (tmp_path / "a.jsonl").write_text("")
    before = run_amk("--store", "jsonl:a.jsonl", "corpus", "stats", "--json")
    after = run_amk("corpus", "stats", "--store", "jsonl:a.jsonl", "--json")
    equals = run_amk("corpus", "stats", "--json", "--store=jsonl:a.jsonl", "-q")
    assert before.returncode == after.returncode == equals.returncode == 0, after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) == json.loads(equals.stdout)
    assert json.loads(after.stdout)["store"].endswith("a.jsonl")


@pytest.mark.parametrize("args", [
    ["corpus", "stats", "--nope"],
    ["tune", "--workload", "nocolon", "--device", "h100"],
    ["tune", "--workload", "decode:x", "--shape", "hidden", "--device", "h100"],
    ["tune", "--workload", "decode:x", "--shape", LLAMA_1B, "--device", "h100", "--budget", "0"],
    ["tune", "--workload", "decode:x", "--shape", LLAMA_1B, "--device", "h100", "--backend", "nope"],
    ["tune", "--workload", "decode:x", "--shape", LLAMA_1B, "--device", "h100", "--backend-option", "novalue"],
    ["tune", "--workload", "decode:x", "--shape", LLAMA_1B, "--device", "h100", "--backend-option", "nokey=1"],
    ["warm-start", "--workload", "kernel_tuner:k", "--problem-size", "4096,-1", "--device", "a100"],
    ["warm-start", "--workload", "kernel_tuner:k", "--problem-size", "1024,,1024", "--device", "a100"],
    ["warm-start", "--workload", "kernel_tuner:k", "--problem-size", ",", "--device", "a100"],
    ["evaluate", "--ranker", "nope"],
    ["evaluate", "--featurizer", "nope"],
    ["simulate", "--caches", ".", "--seeds", "0"],
    ["simulate", "--caches", ".", "--strategy", "randon"],
    ["--store", "mysql://db/amk", "corpus", "stats"],
    ["corpus", "stats", "--store", "jsonl:"],
    ["corpus", "copy", "jsonl:a.jsonl", "b.sqlite"],
    ["corpus", "import", "--device", " ", "."],
    ["corpus", "validate", "--device", "", "."],
    ["nosuchcommand"],
], ids=lambda a: " ".join(a[:3]))
def test_every_usage_error_exits_2_without_a_traceback(run_amk, args):
    out = run_amk(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Error" in out.stderr


def test_evaluate_with_nothing_to_hold_out_names_the_kinds_it_looked_for(run_amk):
    out = run_amk("evaluate", "--ranker", "knn", "--kind", "predicted")
    assert out.returncode == 1
    assert "needs predicted PASS rows on at least two devices" in out.stderr


def test_every_missing_shape_field_is_named_at_once(run_amk):
    out = run_amk("tune", "--workload", "decode:x", "--shape", "hidden=2048", "--device", "h100")
    assert out.returncode == 2
    assert "n_heads, intermediate, n_layers" in out.stderr and "n_heads=...,intermediate=...,n_layers=..." in out.stderr


def test_config_show_prints_toml_that_reads_back_to_the_effective_config(run_amk, tmp_path):
    (tmp_path / "amk.toml").write_text('[ranker]\nname = "knn"\nk = 7\n[tune]\ntransfer = false\n')
    text = run_amk("config", "show")
    shown = json.loads(run_amk("config", "show", "--json").stdout)
    assert text.returncode == 0, text.stderr
    parsed = tomllib.loads(text.stdout)
    for section, body in shown["sections"].items():
        values = {k: v["value"] for k, v in body["options"].items() if v["value"] is not None}
        if "name" in body:
            values["name"] = body["name"]["value"]
        assert parsed[section] == values, section
    assert parsed["ranker"]["k"] == 7 and parsed["tune"]["transfer"] is False


def test_the_plugins_table_is_as_wide_as_its_content(run_amk):
    out = run_amk("plugins")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.split("\n\n")[0].splitlines()
    header = rows[0]
    for column in ("NAME", "PROVIDED BY", "STATUS"):
        start = header.index(column)
        assert all(row[start - 2:start] == "  " and row[start] != " " for row in rows[1:]), column
    assert all(line == line.rstrip() for line in rows)
    assert any(row.startswith("featurizer  generic") for row in rows)  # no column runs into the next


@pytest.fixture
def conv_store(run_amk, tmp_path):
    for name, device, factor in (("A100.json", "NVIDIA A100-PCIE-40GB", 1.0), ("A4000.json", "NVIDIA RTX A4000", 2.0)):
        path = write_cache(tmp_path / name, device_name=device, device_factor=factor, best_block=32)
        assert run_amk("corpus", "import", str(path)).returncode == 0
    return tmp_path


def test_rank_says_what_its_score_means_and_what_it_was_trained_on(run_amk, conv_store):
    (conv_store / "cands.json").write_text(json.dumps([{"block_size_x": b, "tile_size_x": 2} for b in (16, 32, 64)]))
    out = run_amk("rank", "cands.json", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024",
                  "--device", "a6000")
    assert out.returncode == 0, out.stderr
    assert "lower is better" in out.stderr and "trained on 22 measured PASS rows of 1 workload(s) on 2 device(s)" in out.stderr
    assert out.stdout.splitlines()[0].split() == ["RANK", "SCORE", "INPUT", "CONFIG"]


def test_rank_refuses_partial_configs_naming_each_and_its_missing_knobs(run_amk, conv_store):
    (conv_store / "cands.json").write_text(json.dumps([{"block_size_x": 16, "tile_size_x": 2}, {"block_size_x": 32},
                                                       {"other": 1}]))
    out = run_amk("rank", "cands.json", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024",
                  "--device", "a6000")
    assert out.returncode == 1
    assert "2 of 3 candidate(s) are partial configs (#2 lacks tile_size_x; #3 lacks block_size_x, tile_size_x)" \
        in out.stderr


def test_rank_refuses_knob_values_of_a_type_the_corpus_never_had(run_amk, conv_store):
    (conv_store / "cands.json").write_text(json.dumps([{"block_size_x": 16, "tile_size_x": 2},
                                                       {"block_size_x": "32", "tile_size_x": True},
                                                       {"block_size_x": None, "tile_size_x": [2]}]))
    out = run_amk("rank", "cands.json", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024",
                  "--device", "a6000")
    assert out.returncode == 1
    assert "3 knob value(s) of a type no kernel_tuner:toy_kernel config in the corpus has (#2 block_size_x is text " \
           '"32" where the corpus has a number; #3 block_size_x is null where the corpus has a number; #3 tile_size_x ' \
           "is a list [2] where the corpus has a number)" in out.stderr  # true is 1 where knobs match: accepted


def test_rank_says_which_knobs_the_prior_cannot_use(run_amk, conv_store):
    (conv_store / "cands.json").write_text(json.dumps([{"block_size_x": 16, "tile_size_x": 2, "bogus": 1},
                                                       {"block_size_x": 16, "tile_size_x": 2, "bogus": 2}]))
    out = run_amk("rank", "cands.json", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024",
                  "--device", "a6000")
    assert out.returncode == 0, out.stderr
    assert "2 candidate(s) have knob(s) no kernel_tuner:toy_kernel config in the corpus has (bogus): the prior " \
           "cannot use them" in out.stderr


def test_warm_start_flags_seeds_beyond_the_shape_radius(run_amk, conv_store):
    out = run_amk("warm-start", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "8192,8192",
                  "--device", "a100", "--radius", "0.1")
    assert out.returncode == 0, out.stderr
    assert "BEYOND --radius 0.1" in out.stdout and "beyond --radius 0.1" in out.stderr
    near = run_amk("warm-start", "--workload", "kernel_tuner:toy_kernel", "--problem-size", "1024,1024",
                   "--device", "a100", "--json")
    assert not any(seed["beyond_radius"] for seed in json.loads(near.stdout))


def test_quiet_silences_progress_but_not_results(run_amk, conv_store):
    args = ["corpus", "copy", "jsonl:.amk/corpus.jsonl", "sqlite:copy.sqlite"]
    loud = run_amk(*args)
    assert loud.returncode == 0 and "copy to sqlite:" in loud.stderr and "records/s" in loud.stderr
    quiet = run_amk("-q", "corpus", "export", "--store", "sqlite:copy.sqlite", "-o", "out.jsonl")
    assert quiet.returncode == 0 and quiet.stderr.strip().startswith("exported 24 records")


def _row(strategy, evals, budget=100, device="a100"):
    return SimulationRow("k", device, strategy, evals, evals, None, None, 50, 1.0, budget)


def test_simulate_counts_never_against_an_expectation_beyond_the_budget_as_never_not_more():
    rows = [_row("amk", None), _row("random", 250.0), _row("amk", 3, device="a4000"), _row("random", 9.0, device="a4000")]
    summary = summarize(rows)
    assert summary["amk_against_each_baseline"]["random"] == {"fewer": 1, "equal": 0, "more": 0, "never": 1}


def test_simulate_says_one_seed_and_draws_the_curves_beside_the_table(run_amk, tmp_path):
    folder = tmp_path / "caches"
    folder.mkdir()
    write_cache(folder / "A100.json", device_name="NVIDIA A100-PCIE-40GB", best_block=32)
    write_cache(folder / "A4000.json", device_name="NVIDIA RTX A4000", device_factor=2.0, best_block=32)
    out = run_amk("simulate", "--caches", str(folder), "--budget", "8", "--seeds", "1",
                  "--strategy", "amk", "--strategy", "random", "--json", "rows.json")
    assert out.returncode == 0, out.stderr
    assert "median of 1 seed" in out.stdout and "1 seeds" not in out.stdout and "Budget 8, 1 seed;" in out.stdout
    png = tmp_path / ".amk" / "simulate" / "caches.png"
    assert f"curves per strategy: {png.relative_to(tmp_path)}" in out.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert all(len(r["curve"]) == 8 and r["curve"][-1] >= 1.0 for r in rows)


def test_output_piped_into_a_reader_that_stops_early_ends_quietly_with_141(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import amk_env

    read, write = os.pipe()
    os.close(read)  # `amk config show | head -0`: the reader is gone before amk writes
    done = subprocess.run([sys.executable, "-m", "amk", "config", "show"], check=False, cwd=tmp_path, env=amk_env(),
                          stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert done.returncode == 141
    assert done.stderr == ""


def test_simulate_refuses_a_device_for_a_file_that_is_none_of_the_caches(run_amk, tmp_path):
    folder = tmp_path / "caches"
    folder.mkdir()
    write_cache(folder / "A100.json", device_name="NVIDIA A100-PCIE-40GB")
    write_cache(folder / "A4000.json", device_name="NVIDIA RTX A4000", device_factor=2.0)
    out = run_amk("simulate", "--caches", str(folder), "--budget", "2", "--seeds", "1", "--strategy", "random",
                  "--device", "A40.json=a4000")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "'A40.json' is no cache file in" in out.stderr and "the caches are A100.json, A4000.json" in out.stderr
    named = run_amk("simulate", "--caches", str(folder), "--budget", "2", "--seeds", "1", "--strategy", "random",
                    "--device", "A4000=a4000")
    assert named.returncode == 0, named.stderr


def test_a_problem_size_reads_as_kernel_tuner_keeps_it():
    from amk.cli.target import parse_problem_size

    assert parse_problem_size("4096") == 4096 and parse_problem_size("4096,") == [4096]
    assert parse_problem_size(" 1024, 2048 ") == [1024, 2048] and parse_problem_size("bx*64,8") == ["bx*64", 8]


def test_a_shape_with_a_list_is_given_as_a_json_object_and_named_so_in_messages(run_amk, tmp_path):
    key = [1024, 1024, "torch.float16"]  # a Triton tuning key: --shape KEY=VALUE,... cannot say it
    (tmp_path / "mm.autotune.json").write_text(json.dumps({"key": key, "configs_timings": [
        [{"kwargs": {"BLOCK": 64}, "num_warps": 4, "num_stages": 3, "num_ctas": 1}, [0.5, 0.4, 0.6]],
        [{"kwargs": {"BLOCK": 128}, "num_warps": 4, "num_stages": 3, "num_ctas": 1}, [0.9, 0.8, 1.0]]]}))
    args = ["tune", "--workload", "triton:mm", "--device", "h100", "--backend", "replay",
            "--backend-option", "cache=mm.autotune.json", "--budget", "2"]
    out = run_amk(*args, "--shape", json.dumps({"key": key}))
    assert out.returncode == 0, out.stderr
    assert 'best: 500.000 us (replayed)' in out.stdout
    wrong = run_amk(*args, "--shape", "key=1024")
    assert wrong.returncode == 1
    assert '({"key": 1024}) on \'h100\'; it holds: mm ({"key": [1024, 1024, "torch.float16"]}) on h100' in wrong.stderr
    assert run_amk(*args, "--shape", '{"key": [1024').returncode == 2
