"""``amk corpus copy`` and ``amk corpus export`` between and from every built-in store."""

from __future__ import annotations

import json

import pytest
from store_helpers import make_record

from amk.core.config import open_store
from amk.core.records import record_to_json

pytest_plugins = ["store_fixtures"]

RECORDS = [make_record(i) for i in range(40)]


def write_jsonl(path, records) -> None:
    path.write_text("".join(record_to_json(r) + "\n" for r in records))


@pytest.mark.postgres
def test_copy_through_sqlite_and_postgres_back_to_jsonl_is_byte_identical(run_amk, tmp_path, postgres_url):
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    for src, dst in (("jsonl:a.jsonl", "sqlite:b.sqlite"), ("sqlite:b.sqlite", postgres_url),
                     (postgres_url, "jsonl:c.jsonl")):
        done = run_amk("corpus", "copy", src, dst, "--batch-size", "7")
        assert done.returncode == 0, done.stderr
        assert "copied 40 records" in done.stdout and "now 40" in done.stdout
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_copy_into_a_store_that_already_holds_records_adds_them(run_amk, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS[:10])
    with open_store(f"sqlite:{tmp_path / 'b.sqlite'}") as store:
        store.append(RECORDS[10:15])
    done = run_amk("corpus", "copy", "jsonl:a.jsonl", "sqlite:b.sqlite")
    assert done.returncode == 0, done.stderr
    assert "(it held 5, now 15)" in done.stdout


def test_copy_from_a_store_with_an_unreadable_entry_copies_the_rest_and_exits_1(run_amk, tmp_path):
    lines = [record_to_json(r) for r in RECORDS[:3]]
    lines.insert(1, '{"schema_version": 1, "workload": 3}')
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    done = run_amk("corpus", "copy", "jsonl:a.jsonl", "sqlite:b.sqlite")
    assert done.returncode == 1
    assert "a.jsonl:2: workload must be an object" in done.stderr
    assert "could not be read and were not copied" in done.stderr
    with open_store(f"sqlite:{tmp_path / 'b.sqlite'}") as store:
        assert store.count() == 3


def test_copy_refuses_to_copy_a_store_into_itself(run_amk, tmp_path):
    done = run_amk("corpus", "copy", "sqlite:x.sqlite", "sqlite:x.sqlite")
    assert done.returncode == 1
    assert "same store" in done.stderr


def test_export_writes_every_record_as_current_schema_jsonl_on_stdout(run_amk, store_url):
    with open_store(store_url) as store:
        store.append(RECORDS)
    done = run_amk("--store", store_url, "corpus", "export")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [record_to_json(r) for r in RECORDS]
    assert "exported 40 records" in done.stderr


def test_export_to_a_file_keeps_only_the_filtered_records(run_amk, tmp_path):
    with open_store(f"sqlite:{tmp_path / 's.sqlite'}") as store:
        store.append(RECORDS)
    done = run_amk("--store", "sqlite:s.sqlite", "corpus", "export", "-o", "out.jsonl", "--device", "a100",
                   "--verdict", "PASS")
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    expected = [record_to_json(r) for r in RECORDS
                if r.device.name == "a100" and r.measurement.verdict.value == "PASS"]
    assert lines == expected and expected
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_export_lists_unreadable_entries_and_exits_1(run_amk, tmp_path):
    (tmp_path / "a.jsonl").write_text(record_to_json(RECORDS[0]) + "\nnot json\n")
    done = run_amk("--store", "jsonl:a.jsonl", "corpus", "export")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [record_to_json(RECORDS[0])]
    assert "a.jsonl:2: not valid JSON" in done.stderr


def test_export_names_the_known_formats_for_an_unknown_one(run_amk):
    done = run_amk("corpus", "export", "--format", "parquet")
    assert done.returncode == 1
    assert "unknown export format 'parquet'" in done.stderr and "jsonl" in done.stderr


def test_stats_of_a_sqlite_store_counts_by_device(run_amk, tmp_path):
    with open_store(f"sqlite:{tmp_path / 's.sqlite'}") as store:
        store.append(RECORDS)
    done = run_amk("--store", "sqlite:s.sqlite", "corpus", "stats", "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["total"] == 40
    assert stats["by_device"] == {"a100": 13, "h100": 14, "l4": 13}


@pytest.mark.postgres
def test_import_into_a_sql_store_skips_records_it_already_holds(run_amk, tmp_path, postgres_url):
    write_jsonl(tmp_path / "a.jsonl", RECORDS[:10])
    for url in ("sqlite:s.sqlite", postgres_url):
        first = run_amk("--store", url, "corpus", "import", "a.jsonl")
        assert first.returncode == 0, first.stderr
        assert "imported 10 records" in first.stdout
        again = run_amk("--store", url, "corpus", "import", "a.jsonl")
        assert "imported 0 records" in again.stdout and "10 already in the store" in again.stdout
        with open_store(url if url.startswith("postgres") else f"sqlite:{tmp_path / 's.sqlite'}") as store:
            assert store.count() == 10


def test_an_export_whose_device_matches_nothing_names_the_stores_devices(run_amk, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    done = run_amk("--store", "jsonl:a.jsonl", "corpus", "export", "--format", "kernel-tuner", "--device", "a1OO")
    assert done.returncode == 1
    assert "no records of --device 'a1oo'; its devices: a100" in done.stderr
    done = run_amk("--store", "jsonl:a.jsonl", "corpus", "export", "--device", "a1OO", "-o", "out.jsonl")
    assert done.returncode == 0 and "amk: note: nothing to export: the store holds no records" in done.stderr


def test_an_export_naming_a_workload_as_stats_prints_it_says_how_to_pass_it(run_amk, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    workload = RECORDS[0].workload
    full = f"{workload.kind}:{workload.name}"
    done = run_amk("--store", "jsonl:a.jsonl", "corpus", "export", "--format", "t4", "--workload-name", full)
    assert done.returncode == 1
    assert f"pass it as --workload-kind {workload.kind} --workload-name {workload.name}" in done.stderr


def test_reading_a_store_that_does_not_exist_says_so_instead_of_an_empty_corpus_alone(run_amk, tmp_path):
    for url in ("jsonl:typo/corpus.jsonl", "sqlite:typo/corpus.sqlite"):
        done = run_amk("--store", url, "corpus", "stats")
        assert done.returncode == 0, done.stderr
        note = next(line for line in done.stderr.splitlines() if line.startswith("amk: note: there is no store at"))
        assert f"{url.partition(':')[0]}:" in note and "typo/corpus." in note and "check --store" in note
    write_jsonl(tmp_path / "a.jsonl", RECORDS[:1])
    assert "no store" not in run_amk("--store", "jsonl:a.jsonl", "corpus", "stats").stderr


def test_copy_from_a_store_that_does_not_exist_is_refused_and_creates_nothing(run_amk, tmp_path):
    done = run_amk("corpus", "copy", "jsonl:typo.jsonl", "sqlite:b.sqlite")
    assert done.returncode == 1
    assert "SRC jsonl:" in done.stderr and "typo.jsonl does not exist; nothing was copied" in done.stderr
    assert not (tmp_path / "b.sqlite").exists()


def test_an_export_whose_shape_matches_nothing_lists_the_shapes_the_other_filters_select(run_amk, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    workload = RECORDS[0].workload
    done = run_amk("--store", "jsonl:a.jsonl", "corpus", "export", "--format", "t4", "--workload-name", workload.name,
                   "--shape", "nosuchkey=3")
    assert done.returncode == 1
    assert 'has the shape {"nosuchkey": 3}' in done.stderr
    assert json.dumps(workload.shape, sort_keys=True) in done.stderr


def test_stats_prints_a_shape_value_that_is_a_list_as_json(run_amk, tmp_path):
    import attrs

    from amk.core.workload import Workload

    triton_like = attrs.evolve(RECORDS[0], workload=Workload("triton", "matmul", {"key": [1024, "torch.float16"]}))
    write_jsonl(tmp_path / "a.jsonl", [triton_like])
    done = run_amk("--store", "jsonl:a.jsonl", "corpus", "stats")
    assert done.returncode == 0, done.stderr
    assert 'key=[1024, "torch.float16"]' in done.stdout


@pytest.mark.parametrize("url", ["jsonl:a.jsonl", "sqlite:a.sqlite"])
def test_stats_has_a_row_per_shape_of_a_workload_measured_at_several(run_amk, tmp_path, url):
    import attrs

    from amk.core.workload import Workload

    sizes = [[1024, 1024]] * 3 + [[2048, 2048]] * 2
    records = [attrs.evolve(r, workload=Workload("kernel_tuner", "matmul", {"problem_size": size}))
               for r, size in zip(RECORDS, sizes)]
    with open_store(url.replace(":", f":{tmp_path}/", 1)) as store:
        store.append(records)
    done = run_amk("--store", url, "corpus", "stats")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("kernel_tuner:matmul")]
    assert [row[1:] for row in rows] == [["3", "problem_size=[1024,", "1024]"], ["2", "problem_size=[2048,", "2048]"]]
    shapes = json.loads(run_amk("--store", url, "corpus", "stats", "--json").stdout)["shapes"]["kernel_tuner:matmul"]
    assert [(r["shape"]["problem_size"], r["records"]) for r in shapes] == [([1024, 1024], 3), ([2048, 2048], 2)]


def test_export_to_dash_writes_stdout_and_a_json_report_to_dash_is_a_usage_error(run_amk, tmp_path):
    with open_store(f"sqlite:{tmp_path / 's.sqlite'}") as store:
        store.append(RECORDS)
    done = run_amk("--store", "sqlite:s.sqlite", "corpus", "export", "-o", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [record_to_json(r) for r in RECORDS] and not (tmp_path / "-").exists()
    for args in (("evaluate", "--json", "-"), ("simulate", "--caches", ".", "--plot", "-")):
        refused = run_amk("--store", "sqlite:s.sqlite", *args)
        assert refused.returncode == 2 and "'-' (stdout) is not allowed here" in refused.stderr, refused.stderr
        assert not (tmp_path / "-").exists()
