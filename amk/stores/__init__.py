"""Built-in corpus stores, each a plugin registered through ``register_stores``."""

from __future__ import annotations

from amk.core.implementation import LazyImplementation
from amk.core.markers import hookimpl


@hookimpl
def register_stores(register) -> None:
    """Every built-in store, by where it lives: none of their modules is imported until it is used."""
    register(LazyImplementation("jsonl", "amk.stores.jsonl:JsonlStore"))
    register(LazyImplementation("sqlite", "amk.stores.sqlite:SqliteStore"))
    register(LazyImplementation("postgres", "amk.stores.postgres:PostgresStore", requires={"psycopg": "postgres"}))
    register(LazyImplementation("memory", "amk.stores.memory:MemoryStore"))
