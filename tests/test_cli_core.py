import json
import os
import subprocess
import sys

import attrs
from conftest import REPO_ROOT, amk_env
from tune_helpers import write_cache


def test_import_then_stats_shows_the_44_upstream_records_with_shapes_devices_kinds_verdicts(run_amk, upstream_corpus):
    imported = run_amk("corpus", "import", str(upstream_corpus))
    assert imported.returncode == 0, imported.stderr
    assert "imported 44 records" in imported.stdout
    stats = run_amk("corpus", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "records: 44" in stats.stdout
    assert "hidden=2048, n_layers=16, vocab=128000" in stats.stdout
    for word in ("rtx5090", "a100", "h100", "measured", "predicted", "PASS"):
        assert word in stats.stdout
    as_json = json.loads(run_amk("corpus", "stats", "--json").stdout)
    assert as_json["total"] == 44 and as_json["by_kind"] == {"measured": 37, "predicted": 7}


def test_stats_lists_the_most_recorded_shapes_and_one_row_for_the_rest(run_amk, tmp_path):
    files = [write_cache(tmp_path / f"{n}.json", device_name="NVIDIA A100-PCIE-40GB", problem_size=(n, n)).name
             for n in range(1, 23)]
    assert run_amk("corpus", "import", *files).returncode == 0
    rows = [line for line in run_amk("corpus", "stats").stdout.splitlines() if line.startswith("kernel_tuner:")]
    assert len(rows) == 21 and rows[-1].split()[1:] == ["24", "2", "more", "shapes", "(--json", "lists", "them)"]
    assert len(json.loads(run_amk("corpus", "stats", "--json").stdout)["shapes"]["kernel_tuner:toy_kernel"]) == 22


def test_importing_the_same_file_twice_adds_nothing_the_second_time(run_amk, upstream_corpus):
    run_amk("corpus", "import", str(upstream_corpus))
    again = run_amk("corpus", "import", str(upstream_corpus))
    assert "imported 0 records" in again.stdout and "44 already in the store" in again.stdout
    assert json.loads(run_amk("corpus", "stats", "--json").stdout)["total"] == 44


def test_validate_reports_each_planted_bad_line_with_its_number_and_exits_1(run_amk, upstream_corpus, tmp_path):
    lines = upstream_corpus.read_text().splitlines()[:6]
    lines[1] = "{not json"
    lines[3] = json.dumps({**json.loads(lines[3]), "correctness": "MAYBE"})
    lines[5] = json.dumps({"schema_version": 99})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    result = run_amk("corpus", "validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: not valid JSON" in result.stderr
    assert f"{bad}:4: " in result.stderr and "MAYBE" in result.stderr
    assert f"{bad}:6: schema_version 99 was written by a newer amk" in result.stderr
    assert "3 valid records, 3 bad" in result.stdout


def test_validate_passes_a_clean_file(run_amk, upstream_corpus):
    result = run_amk("corpus", "validate", str(upstream_corpus))
    assert result.returncode == 0 and "44 valid records, 0 bad" in result.stdout


def test_import_keeps_the_good_records_reports_the_bad_and_exits_1(run_amk, upstream_corpus, tmp_path):
    lines = upstream_corpus.read_text().splitlines()[:3] + ["[1, 2]"]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_amk("corpus", "import", str(path))
    assert result.returncode == 1
    assert f"{path}:4: " in result.stderr and "imported 3 records" in result.stdout


def test_migrate_rewrites_in_the_current_schema_and_keeps_a_backup(run_amk, upstream_corpus, tmp_path):
    store = tmp_path / "old.jsonl"
    store.write_text(upstream_corpus.read_text())
    result = run_amk("--store", f"jsonl:{store}", "corpus", "migrate")
    assert result.returncode == 0, result.stderr
    assert "44 records rewritten in schema 1" in result.stdout
    assert all(json.loads(line)["schema_version"] == 1 for line in store.read_text().splitlines())
    [backup] = tmp_path.glob("old.jsonl.bak-*")
    assert backup.read_text() == upstream_corpus.read_text()


def test_a_config_selecting_an_unknown_ranker_fails_listing_the_available_ones(run_amk, tmp_path):
    (tmp_path / "amk.toml").write_text('[ranker]\nname = "nope"\n')
    result = run_amk("corpus", "stats")
    assert result.returncode == 1
    assert "no ranker named 'nope'; available rankers:" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_show_says_where_each_value_came_from(run_amk, tmp_path):
    (tmp_path / "amk.toml").write_text('[store]\nname = "jsonl"\npath = "c.jsonl"\n')
    result = run_amk("config", "show", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["sections"]["store"]["options"]["path"]["from"].endswith("amk.toml")
    assert shown["sections"]["ranker"]["name"]["from"] == "embedded default"


def test_config_show_lists_the_tune_settings_with_their_origin(run_amk, tmp_path):
    (tmp_path / "amk.toml").write_text("[tune]\nbudget = 7\n")
    result = run_amk("config", "show", "--json")
    assert result.returncode == 0, result.stderr
    tune = json.loads(result.stdout)["sections"]["tune"]["options"]
    assert tune["budget"] == {"value": 7, "from": str(tmp_path / "amk.toml")}
    assert tune["policy"] == {"value": "ensemble", "from": "embedded default"}
    text = run_amk("config", "show").stdout
    assert "[tune]" in text and text.index("budget = 7") < text.index('policy = "ensemble"')


def test_plugins_json_lists_every_kind_with_its_distribution(run_amk):
    result = run_amk("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["implementations"]
    jsonl = next(r for r in rows if r["kind"] == "store" and r["name"] == "jsonl")
    assert jsonl["distribution"] == "amk" and jsonl["usable"]


def test_usage_errors_exit_2(run_amk):
    assert run_amk("corpus", "import").returncode == 2
    assert run_amk("no-such-command").returncode == 2


def test_import_of_a_missing_file_is_a_usage_error_not_a_traceback(run_amk, tmp_path):
    result = run_amk("corpus", "import", str(tmp_path / "absent.jsonl"))
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr


def test_import_amk_and_help_load_no_heavy_library():
    probe = (
        "import sys, amk, amk.cli\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(amk.cli.main, ['--help'])\n"
        "heavy = [m for m in ('torch', 'lightgbm', 'sklearn', 'psycopg', 'matplotlib', 'optuna') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=amk_env(), cwd=REPO_ROOT,
                         check=False)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_importing_a_folder_leaves_out_amks_own_files_and_never_appends_the_store_to_itself(tmp_path, monkeypatch):
    import shutil

    from click.testing import CliRunner

    import amk.cli

    monkeypatch.chdir(tmp_path)
    cache = REPO_ROOT / "tests" / "data" / "ingest" / "export-gemm-1024.json"
    shutil.copy(cache, tmp_path / "gemm.json")
    cli = CliRunner()
    assert cli.invoke(amk.cli.main, ["-q", "corpus", "import", "gemm.json"]).exit_code == 0
    store = tmp_path / ".amk" / "corpus.jsonl"
    before = store.read_text()
    report = tmp_path / ".amk" / "tune" / "k-a100-replay" / "latest.report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"backend": "replay", "best": None}))
    # --device relabels every file it reads: the store read back would append its records as another device.
    again = cli.invoke(amk.cli.main, ["-q", "corpus", "import", "--device", "h100", "."])
    assert again.exit_code == 0, again.output
    assert store.read_text().count("\n") == before.count("\n") + len(json.loads(cache.read_text())["cache"])
    assert "amk's own" in again.stderr and "latest.report.json" in again.stderr
    assert "report.json:" not in again.stdout and "corpus.jsonl:" not in again.stdout
    validated = cli.invoke(amk.cli.main, ["-q", "corpus", "validate", "."])
    assert validated.exit_code == 0, validated.output
    itself = cli.invoke(amk.cli.main, ["-q", "corpus", "import", "gemm.json", ".amk/corpus.jsonl"])
    assert itself.exit_code == 2 and "is the store being imported into" in itself.stderr
    assert store.read_text().count("\n") == before.count("\n") + len(json.loads(cache.read_text())["cache"])
    (tmp_path / "empty").mkdir()
    assert "holds no data file" in cli.invoke(amk.cli.main, ["corpus", "import", "empty"]).stderr


def test_validating_a_folder_reads_linked_folders_and_names_the_entries_it_cannot_read(tmp_path, monkeypatch):
    import shutil

    from click.testing import CliRunner

    import amk.cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(REPO_ROOT / "tests" / "data" / "ingest" / "export-gemm-1024.json", tmp_path / "elsewhere" / "g.json")
    (tmp_path / "runs" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "runs" / "parent").symlink_to(tmp_path)  # a loop: each real folder is read once
    (tmp_path / "runs" / "gone.json").symlink_to(tmp_path / "deleted.json")
    os.mkfifo(tmp_path / "runs" / "pipe.jsonl")
    done = CliRunner().invoke(amk.cli.main, ["-q", "corpus", "validate", "runs"])
    assert done.exit_code == 0, done.output
    assert done.stdout.count("g.json: ") == 1 and "valid records" in done.stdout
    assert "runs/gone.json" in done.stderr and "runs/pipe.jsonl" in done.stderr


def test_importing_the_folder_that_is_the_tune_state_dir_reads_its_data_and_leaves_out_only_tune_files(
        tmp_path, monkeypatch):
    import shutil

    from click.testing import CliRunner

    import amk.cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "amk.toml").write_text('[store]\nurl = "jsonl:corpus.jsonl"\n[tune]\nstate_dir = "."\n')
    shutil.copy(REPO_ROOT / "tests" / "data" / "ingest" / "export-gemm-1024.json", tmp_path / "gemm.json")
    (tmp_path / "k-a100-replay.state.json").write_text("{}")
    done = CliRunner().invoke(amk.cli.main, ["-q", "corpus", "import", "."])
    assert done.exit_code == 0, done.output
    assert "gemm.json: imported 2 records" in done.stdout
    assert "amk's own" in done.stderr and "k-a100-replay.state.json" in done.stderr and "gemm" not in done.stderr


def test_stats_tells_apart_shapes_that_compare_equal_in_python(run_amk, tmp_path):
    from amk.core.config import open_store
    from amk.testing import sample_record

    base = sample_record(3)  # a kernel_tuner record
    shapes = [{}, {"x": 0}, {"x": 0.0}, {"x": False}, {"x": [1, "a"]}]
    with open_store(f"jsonl:{tmp_path / 'c.jsonl'}") as store:
        store.append([attrs.evolve(base, workload=attrs.evolve(base.workload, shape=s)) for s in shapes])
    out = run_amk("--store", "jsonl:c.jsonl", "corpus", "stats").stdout
    texts = sorted(line.split(maxsplit=2)[2] for line in out.splitlines() if line.startswith("kernel_tuner:"))
    assert texts == sorted(["shape unknown", "x=0", "x=0.0", "x=false", 'x=[1, "a"]'])
