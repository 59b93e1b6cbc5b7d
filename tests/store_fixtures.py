"""``store_url``: the same test against every built-in store (jsonl, sqlite, and a real PostgreSQL).

Load with ``pytest_plugins = ["store_fixtures"]`` so the PostgreSQL server is started once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres_helpers import postgres_server, postgres_url  # noqa: F401  (fixtures)

STORE_KINDS = ("jsonl", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty store of each kind."""
    if request.param == "jsonl":
        return f"jsonl:{tmp_path / 'corpus.jsonl'}"
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'corpus.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str):
    from amk.core.config import open_store

    with open_store(store_url) as s:
        yield s
