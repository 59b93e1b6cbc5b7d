"""Helpers of the Kernel Tuner integration tests: caches with full timings and the records a store holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amk.core.config import open_store
from amk.core.records import Record


def stored(url: str) -> list[Record]:
    with open_store(url) as store:
        return list(store.query())


def with_timings(path: Path, compile_ms: float) -> Path:
    """The cache at ``path`` with compile, verification and benchmark times on every entry (what a time
    limit in simulation needs)."""
    data = json.loads(path.read_text())
    for entry in data["cache"].values():
        entry.update(compile_time=compile_ms, verification_time=0.0, benchmark_time=1.0)
    path.write_text(json.dumps(data))
    return path


def config_of(result: dict[str, Any], names=("block_size_x", "tile_size_x")) -> dict[str, Any]:
    return {n: result[n] for n in names}
