"""What only the SQL stores do: URLs, refusing databases they cannot read, clear connection errors."""

from __future__ import annotations

import sqlite3

import pytest
from store_helpers import make_record

from amk.core.config import load_config, open_store
from amk.core.errors import StoreError
from amk.core.store import Store
from amk.stores.postgres import PostgresStore
from amk.stores.sqlite import SqliteStore

pytest_plugins = ["store_fixtures"]


@pytest.mark.parametrize(("url", "path"), [("sqlite:corpus.db", "corpus.db"), ("sqlite:///srv/amk/c.db", "/srv/amk/c.db"),
                                           ("sqlite:../up/c.db", "../up/c.db")])
def test_sqlite_urls_name_the_database_file(url, path):
    assert SqliteStore.options_from_url(url) == {"path": path}


def test_a_sqlite_url_without_a_path_is_refused():
    with pytest.raises(StoreError, match="names no file"):
        SqliteStore.options_from_url("sqlite:")


def test_both_postgres_url_schemes_select_the_postgres_store(tmp_path):
    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        (tmp_path / "amk.toml").write_text(f'[store]\nurl = "{url}"\n')
        config = load_config(cwd=tmp_path)
        assert config.selection("store").name == "postgres"
        assert config.options("store").url == url


def test_a_sqlite_store_in_a_config_file_resolves_its_path_against_that_file(tmp_path):
    (tmp_path / "amk.toml").write_text('[store]\nurl = "sqlite:data/corpus.sqlite"\n')
    with load_config(cwd=tmp_path).create(Store) as store:
        store.append([make_record(1)])
    assert (tmp_path / "data" / "corpus.sqlite").is_file()


def test_a_sqlite_database_from_a_newer_amk_layout_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    with open_store(f"sqlite:{path}") as store:
        store.append([make_record(1)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE amk_meta SET value = '99' WHERE key = 'layout_version'")
    with pytest.raises(StoreError, match="table layout 99, written by a newer amk.*upgrade amk"):
        open_store(f"sqlite:{path}").count()


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_text("this is not sqlite\n" * 100)
    with pytest.raises(StoreError, match="check that it is an amk SQLite corpus"):
        open_store(f"sqlite:{path}").count()


def test_sqlite_migrate_reports_that_current_records_need_nothing(tmp_path):
    with open_store(f"sqlite:{tmp_path / 'c.sqlite'}") as store:
        store.append([make_record(1)])
        assert "nothing to migrate" in store.migrate()


def test_an_unreachable_postgres_server_gives_a_clear_error_without_the_password(tmp_path):
    pytest.importorskip("psycopg")
    store = PostgresStore(PostgresStore.Options(url=f"postgresql://amk:s3cret@/amk?host={tmp_path}",
                                                connect_timeout_s=2))
    with pytest.raises(StoreError) as info:
        store.count()
    message = str(info.value)
    assert "cannot connect to postgresql://amk:***@/amk" in message and "s3cret" not in message
    assert "check the URL and that the server runs" in message


@pytest.mark.postgres
def test_two_postgres_stores_created_at_once_share_one_set_of_tables(postgres_url):
    first, second = open_store(postgres_url), open_store(postgres_url)
    first.append([make_record(1)])
    second.append([make_record(2)])
    assert first.count() == second.count() == 2
    first.close()
    second.close()


@pytest.mark.postgres
def test_postgres_keys_longer_than_an_index_entry_are_stored(postgres_url):
    record = make_record(1)
    long_config = {**record.config, "fusion_grouping": [[f"op{i}" for i in range(2000)]]}
    import attrs

    with open_store(postgres_url) as store:
        store.append([attrs.evolve(record, config=long_config)])
        [back] = store.query()
        assert back.config == long_config
