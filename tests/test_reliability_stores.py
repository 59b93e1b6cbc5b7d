"""A store knows itself whatever its URL says, refuses files that are not its kind, and the files amk creates
beside it (backups, temporary files, partial exports, caches) are its own: unique, exclusive, complete."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from reliability_worker import ORIGINAL
from store_helpers import make_record

from amk.core.columns import VERDICT_CODES
from amk.core.config import open_store
from amk.core.errors import StoreError
from amk.core.records import record_from_dict, record_to_json

pytest_plugins = ["store_fixtures"]

RECORDS = [make_record(i) for i in range(12)]


@pytest.fixture
def amk_in(tmp_path, monkeypatch):
    """Run the amk command in this process (faster than a subprocess), in ``tmp_path``: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    import amk.cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMK_CONFIG", raising=False)

    def run(*args: str):
        result = CliRunner().invoke(amk.cli.main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def jsonl_with(path: Path, records) -> Path:
    path.write_text("".join(record_to_json(r) + "\n" for r in records))
    return path


# -- identity ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["./{name}", "{dir}/{name}", "{dir}/sub/../{name}", "{dir}/link"])
def test_copy_onto_the_same_jsonl_file_under_another_name_is_refused_before_anything_is_written(
        run_amk, tmp_path, spelling):
    path = jsonl_with(tmp_path / "a.jsonl", RECORDS)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(path)
    before = path.read_bytes()
    other = spelling.format(dir=tmp_path, name="a.jsonl")
    done = run_amk("corpus", "copy", "jsonl:a.jsonl", f"jsonl:{other}", "--batch-size", "1")
    assert done.returncode == 1
    assert "are the same store under two names; nothing was copied" in done.stderr
    assert path.read_bytes() == before


def test_copy_onto_a_hard_link_of_the_sqlite_file_is_refused(run_amk, tmp_path):
    with open_store(f"sqlite:{tmp_path / 'a.sqlite'}") as store:
        store.append(RECORDS)
    os.link(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    done = run_amk("corpus", "copy", "sqlite:a.sqlite", f"sqlite:///{tmp_path / 'b.sqlite'}")
    assert done.returncode == 1 and "same store under two names" in done.stderr
    with open_store(f"sqlite:{tmp_path / 'a.sqlite'}") as store:
        assert store.count() == len(RECORDS)


@pytest.mark.postgres
def test_copy_onto_the_same_postgres_database_spelled_differently_is_refused(run_amk, postgres_url):
    with open_store(postgres_url) as store:
        store.append(RECORDS)
    user_at, rest = postgres_url.split("//", 1)[1].split("/", 1)
    other = f"postgres://{user_at}/{rest}"  # the other scheme, same database
    done = run_amk("corpus", "copy", postgres_url, other)
    assert done.returncode == 1 and "same store under two names" in done.stderr
    with open_store(postgres_url) as store:
        assert store.count() == len(RECORDS)


def test_a_jsonl_store_pointed_at_a_sqlite_file_refuses_it_and_leaves_it_untouched(run_amk, tmp_path):
    with open_store(f"sqlite:{tmp_path / 'c.sqlite'}") as store:
        store.append(RECORDS)
    before = (tmp_path / "c.sqlite").read_bytes()
    source = jsonl_with(tmp_path / "in.jsonl", [make_record(50)])
    for args in (("corpus", "import", str(source)), ("corpus", "stats"), ("corpus", "migrate")):
        done = run_amk("--store", "jsonl:c.sqlite", *args)
        assert done.returncode == 1, args
        assert "is not a jsonl corpus: it is a SQLite database: open it as sqlite:" in done.stderr
        assert "Traceback" not in done.stderr
    assert (tmp_path / "c.sqlite").read_bytes() == before
    assert not (tmp_path / "c.sqlite.torn").exists()
    with open_store(f"sqlite:{tmp_path / 'c.sqlite'}") as store:
        assert store.count() == len(RECORDS)


@pytest.mark.parametrize("content", [b"\x00\x01\x02binary", b"hello world\n", b"\xff\xfe{bad utf-8}\n"])
def test_a_jsonl_store_refuses_any_file_that_is_not_a_corpus(tmp_path, content):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with open_store(f"jsonl:{path}") as store:
        for action in (lambda: store.append([make_record(0)]), store.count, lambda: list(store.query())):
            with pytest.raises(StoreError, match="is not a jsonl corpus"):
                action()
    assert path.read_bytes() == content


def test_copy_skips_what_the_destination_holds_and_says_how_many(run_amk, tmp_path):
    jsonl_with(tmp_path / "src.jsonl", RECORDS)
    jsonl_with(tmp_path / "dst.jsonl", RECORDS[:5])
    done = run_amk("corpus", "copy", "jsonl:src.jsonl", "jsonl:dst.jsonl", "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    assert "copied 7 records" in done.stdout and "5 already in it skipped" in done.stdout
    with open_store(f"jsonl:{tmp_path / 'dst.jsonl'}") as store:
        assert [record_to_json(r) for r in store.query()] == [record_to_json(r) for r in RECORDS]
    again = run_amk("corpus", "copy", "jsonl:src.jsonl", "jsonl:dst.jsonl")
    assert "copied 0 records" in again.stdout and "12 already in it skipped" in again.stdout


# -- files created beside a store ---------------------------------------------------------------------------

def test_two_migrations_in_the_same_second_keep_two_backups_of_what_each_found(tmp_path):
    import json

    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(ORIGINAL) + "\n")
    with open_store(f"jsonl:{path}") as store:
        store.migrate()
    path.write_text(path.read_text() + json.dumps(ORIGINAL) + "\n")  # an older amk appended again
    second = path.read_bytes()
    with open_store(f"jsonl:{path}") as store:
        store.migrate()
    backups = sorted(tmp_path.glob("c.jsonl.bak-*"))
    assert len(backups) == 2
    assert {b.read_bytes() for b in backups} == {(json.dumps(ORIGINAL) + "\n").encode(), second}


def test_a_sqlite_migration_never_writes_its_backup_over_a_file(tmp_path):
    path = tmp_path / "c.sqlite"
    for _ in range(2):
        with open_store(f"sqlite:{path}") as store:
            store.append([record_from_dict(ORIGINAL)])
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE amk_records SET schema_version = 0")
            conn.execute("UPDATE amk_bodies SET body = ?", (__import__("json").dumps(ORIGINAL),))
        with open_store(f"sqlite:{path}") as store:
            assert "backup at" in store.migrate()
    assert len(list(tmp_path.glob("c.sqlite.bak-*"))) == 2


def test_files_amk_creates_never_follow_a_symlink_planted_at_a_predictable_name(run_amk, tmp_path):
    import json

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps(ORIGINAL) + "\n")
    now = time.time()
    stamps = {time.strftime("%Y%m%d-%H%M%S", time.localtime(now + dt)) for dt in range(4)}
    for name in ("out.jsonl.partial", "c.jsonl.migrating", "out.jsonl.tmp", "c.jsonl.torn",
                 *(f"c.jsonl.bak-{s}" for s in stamps)):
        (tmp_path / name).symlink_to(victim)  # the names an earlier amk wrote to
    with corpus.open("a") as f:
        f.write('{"torn": ')  # a writer killed mid-line: the next write sets the fragment aside
    assert run_amk("--store", "jsonl:c.jsonl", "corpus", "migrate").returncode == 0
    exported = run_amk("--store", "jsonl:c.jsonl", "corpus", "export", "-o", "out.jsonl")
    assert exported.returncode == 1 and "a torn line" in exported.stderr  # set aside, in a file of its own
    assert run_amk("--store", "jsonl:c.jsonl", "corpus", "stats").returncode == 0
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1


def test_the_columns_cache_sees_a_same_size_edit_in_the_middle_of_the_file(tmp_path):
    path = jsonl_with(tmp_path / "c.jsonl", RECORDS)
    with open_store(f"jsonl:{path}") as store:
        assert len(store.columns()) == len(RECORDS)  # the cache is written
    text = path.read_text()
    middle = record_to_json(RECORDS[6])
    edited = middle.replace('"verdict":"PASS"', '"verdict":"FAIL"') if '"verdict":"PASS"' in middle else \
        middle.replace('"verdict":"FAIL"', '"verdict":"PASS"')
    assert len(edited) == len(middle) and edited != middle
    path.write_text(text.replace(middle, edited))  # same size, same inode, within the same second
    with open_store(f"jsonl:{path}") as store:
        fresh = [r.measurement.verdict.value for r in store.query()]
        cached = store.columns()
    assert [VERDICT_CODES[int(v)].value for v in cached.verdict] == fresh


# -- options and secrets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("section", ['url = "sqlite:c.sqlite"\nretries = -1',
                                     'url = "postgresql://amk@localhost/amk"\nretries = -1',
                                     'url = "sqlite:c.sqlite"\nbusy_timeout_s = nan',
                                     'url = "sqlite:c.sqlite"\nretries = "3"',
                                     'url = "jsonl:c.jsonl"\nfsync = 1'])
def test_a_store_option_out_of_range_or_of_the_wrong_type_is_a_config_error(amk_in, tmp_path, section):
    (tmp_path / "amk.toml").write_text(f"[store]\n{section}\n")
    source = jsonl_with(tmp_path / "in.jsonl", RECORDS[:3])
    code, _, err = amk_in("corpus", "import", str(source))
    assert code == 1
    assert "amk: error:" in err and "amk.toml" in err
    assert not (tmp_path / "c.sqlite").exists() and not (tmp_path / "c.jsonl").exists()


def test_a_postgres_password_is_never_printed(amk_in, tmp_path):
    url = f"postgresql://amk:hunter2@/amk?host={tmp_path}&connect_timeout=2"
    (tmp_path / "amk.toml").write_text(f'[store]\nurl = "{url}"\n')
    source = jsonl_with(tmp_path / "in.jsonl", RECORDS[:2])
    for args in (("config", "show"), ("config", "show", "--json"), ("corpus", "stats"),
                 ("corpus", "import", str(source)), ("corpus", "copy", url, "jsonl:x.jsonl")):
        _, out, err = amk_in(*args)
        assert "hunter2" not in out + err, args
    conninfo = f"host={tmp_path} user=amk password=hunter2 dbname=amk connect_timeout=2"
    with pytest.raises(StoreError) as info:
        open_store(f"postgresql://amk:hunter2@/amk?host={tmp_path}").count()
    assert "hunter2" not in str(info.value)
    from amk.io.display import redact

    assert "hunter2" not in redact(f"cannot connect: {conninfo}")


def test_control_characters_in_names_are_escaped_in_every_line_amk_prints(amk_in, tmp_path):
    import attrs

    from amk.core.workload import Workload

    hostile = attrs.evolve(RECORDS[0], workload=Workload("decode", "evil\x1b[2J\nfake line\u202e", {"hidden": 1}))
    source = jsonl_with(tmp_path / "in\x1bname.jsonl", [hostile])
    outputs = [amk_in("--store", "jsonl:c.jsonl", "corpus", "import", str(source)),
               amk_in("--store", "jsonl:c.jsonl", "corpus", "stats"),
               amk_in("corpus", "validate", str(source))]
    for code, out, err in outputs:
        text = out + err
        assert code == 0 and "\x1b" not in text and "\u202e" not in text and "\nfake line" not in text
    assert "evil\\x1b[2J\\x0afake line\\u202e" in outputs[1][1]


def test_config_errors_name_the_file_and_key_and_refuse_wrong_types(amk_in, tmp_path):
    cases = {"[tune]\ntrees = 0": "trees", "[tune]\ntimeout_s = nan": "timeout_s", "[tune]\nbudget = true": "budget",
             "[tune]\nbudget = 10.7": "budget", "[ranker]\nname = \"knn\"\nk = \"3\"": "k",
             "[backend]\nname = \"roofline\"\nlayers = -2": "layers"}
    for text, key in cases.items():
        (tmp_path / "amk.toml").write_text(text + "\n")
        code, _, err = amk_in("config", "show")
        assert code == 1, text
        assert "amk.toml" in err and key in err, err
    (tmp_path / "amk.toml").write_bytes(b"\x00\x89PNG binary \xff")
    code, _, err = amk_in("config", "show")
    assert code == 1 and "not a TOML text file" in err

