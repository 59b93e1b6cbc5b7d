"""The ``memory`` store: records held in this process only, for simulations and tests (``memory:`` URL).

Nothing survives the process. ``memory:NAME`` opens a named store shared by every ``MemoryStore`` of that
name in the process, so a command that opens the store twice sees one corpus; plain ``memory:`` is private.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import attrs

from amk.core.records import Record
from amk.core.store import Store

_SHARED: dict[str, list[Record]] = {}
_LOCK = threading.Lock()


class MemoryStore(Store):
    name: ClassVar[str] = "memory"
    url_schemes: ClassVar[tuple[str, ...]] = ("memory",)

    @attrs.frozen
    class Options:
        shared_name: str = ""  # non-empty: share the records with every memory store of this name

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        if self.options.shared_name:
            with _LOCK:
                self._records = _SHARED.setdefault(self.options.shared_name, [])
        else:
            self._records: list[Record] = []

    @classmethod
    def options_from_url(cls, url: str) -> dict[str, Any]:
        return {"shared_name": url.split(":", 1)[1]}

    def describe(self) -> str:
        return f"memory:{self.options.shared_name}"

    def append(self, records: Iterable[Record]) -> int:
        batch = list(records)
        with _LOCK:
            self._records.extend(batch)
        return len(batch)

    def append_new(self, records: Mapping[str, Record], *, identity: Callable[[Record], str] | None = None) -> int:
        """Under the store's lock: those of ``records`` (``identity(record)`` -> record; ``record_id`` by
        default) no held record matches by ``identity``."""
        from amk.core.records import record_id

        identity = identity or record_id
        with _LOCK:
            held = {identity(r) for r in self._records}
            new = [r for rid, r in records.items() if rid not in held]
            self._records.extend(new)
        return len(new)

    def identity(self) -> Hashable:
        return ("memory", self.options.shared_name) if self.options.shared_name else ("memory", id(self._records))

    def _scan(self) -> Iterator[Record]:
        with _LOCK:
            snapshot = list(self._records)
        return iter(snapshot)
