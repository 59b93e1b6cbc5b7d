"""The jsonl store's columns cache: ``<file>.columns.npz``, so training reads do not re-parse the corpus.

The corpus is append-only, so the cache keeps the columns of every complete line up to a byte offset,
with the problems found there and where each record's line starts (so ``known_ids`` can re-read the few
lines it needs). A later read checks that the file is still the one cached (same inode,
same bytes at its head and just before the offset) and parses only what was appended since. Anything
else (a migrated, rewritten or truncated file, an unreadable or foreign cache) is a full re-read; the
cache is written next to the corpus with numpy's plain format (no pickle) and replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.columns import ColumnsBuilder, CorpusColumns
from amk.core.devices import Device
from amk.core.records import Record
from amk.core.store import CorpusProblem
from amk.core.workload import Workload
from amk.stores.jsonl_fast import ColumnsRow

CACHE_VERSION = 2  # 2: each record's line offset
_ARRAYS = ("workload_index", "device_index", "config_index", "latency_us", "bound_us", "verdict", "kind", "timestamp")
_HEAD = 1 << 16
_TAIL = 1 << 12

# (file, start offset, first line number, rows=) -> per line: (line number, Record, ColumnsRow (with
# rows=True: see amk.stores.jsonl_fast), CorpusProblem or None for a blank line, the offset after the line
# or None for an incomplete last line)
LineReader = Callable[..., Iterator[tuple[int, "Record | ColumnsRow | CorpusProblem | None", "int | None"]]]


def cache_path(corpus: Path) -> Path:
    return corpus.with_name(corpus.name + ".columns.npz")


def _fingerprint(f, end: int) -> str:
    digest = hashlib.sha1()
    f.seek(0)
    digest.update(f.read(min(_HEAD, end)))
    f.seek(max(0, end - _TAIL))
    digest.update(f.read(min(_TAIL, end)))
    return digest.hexdigest()


@attrs.frozen
class _Cached:
    columns: CorpusColumns
    problems: list[CorpusProblem]
    end: int  # byte offset just after the last complete line cached
    lines: int  # lines up to ``end``
    offsets: np.ndarray  # where each record's line starts, one per row of ``columns``


@attrs.frozen
class ColumnsRead:
    """What one read of the corpus through the cache found: its columns, problems, and lines' offsets."""

    columns: CorpusColumns
    problems: list[CorpusProblem]
    offsets: np.ndarray  # where the line of each row of ``columns`` starts in the file
    inode: int | None  # the file read (None: there was none); offsets hold only while it is still there


def _load(path: Path, inode: int) -> tuple[_Cached, dict[str, Any]] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION or meta.get("inode") != inode:
                return None
            arrays = {name: data[name] for name in _ARRAYS}
            offsets = data["offsets"]
            arrays["source"] = np.empty(len(meta["source"]), dtype=object)
            arrays["source"][:] = meta["source"]
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    columns = CorpusColumns(
        workloads=[Workload(k, n, s) for k, n, s in meta["workloads"]],
        devices=[Device(**d) for d in meta["devices"]],
        configs=meta["configs"], **arrays)
    problems = [CorpusProblem(w, r) for w, r in meta["problems"]]
    return _Cached(columns, problems, meta["end"], meta["lines"], offsets), meta


def _save(path: Path, cached: _Cached, inode: int, fingerprint: str) -> None:
    cols = cached.columns
    meta = {
        "version": CACHE_VERSION, "inode": inode, "end": cached.end, "lines": cached.lines,
        "fingerprint": fingerprint,
        "workloads": [[w.kind, w.name, w.shape] for w in cols.workloads],
        "devices": [attrs.asdict(d) for d in cols.devices],
        "configs": cols.configs,
        "problems": [[p.where, p.reason] for p in cached.problems],
        "source": cols.source.tolist() if cols.source is not None else [None] * len(cols),
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), offsets=cached.offsets,
                     **{name: getattr(cols, name) for name in _ARRAYS})
        os.replace(tmp, path)
    except OSError:
        # The cache only saves time: a read-only directory or a full disk must not fail a read.
        tmp.unlink(missing_ok=True)


def add_item(builder: ColumnsBuilder, problems: list[CorpusProblem], item: Any) -> bool:
    """One item of a line read (a fast row, a record, a problem, or None for a blank line) into ``builder``
    or ``problems``; whether it was a record."""
    if item is None:
        return False
    if isinstance(item, CorpusProblem):
        problems.append(item)
        return False
    if type(item) is ColumnsRow:
        item.add_to(builder)
    else:
        builder.add(item)
    return True


def cached_columns(corpus: Path, read_lines: LineReader, *, fast: bool = True) -> ColumnsRead:
    """Every readable record of ``corpus`` as columns, every problem, and where each record's line starts,
    reusing and refreshing the cache.

    ``read_lines(f, start, first_lineno, rows=fast)`` reads the lines from offset ``start`` (see
    ``LineReader``); ``fast=False`` reads every line through ``record_from_dict`` (the same columns, slower).
    """
    if not corpus.exists():
        return ColumnsRead(CorpusColumns.from_records([]), [], np.zeros(0, dtype=np.int64), None)
    path = cache_path(corpus)
    with corpus.open("rb") as f:
        stat = os.fstat(f.fileno())
        size = stat.st_size
        base: _Cached | None = None
        loaded = _load(path, stat.st_ino) if path.exists() else None
        if loaded is not None:
            cached, meta = loaded
            if cached.end <= size and _fingerprint(f, cached.end) == meta["fingerprint"]:
                base = cached
        start, lines = (base.end, base.lines) if base else (0, 0)
        builder = ColumnsBuilder.extending(base.columns) if base else ColumnsBuilder()
        problems = list(base.problems) if base else []
        tail_problems: list[CorpusProblem] = []
        end, last_line = start, lines
        offsets: list[int] = []
        for lineno, item, after in read_lines(f, start, lines + 1, rows=fast):
            if after is None:  # an incomplete last line: reported now, never cached
                tail_problems.append(item)
                continue
            line_start, end, last_line = end, after, lineno
            if add_item(builder, problems, item):
                offsets.append(line_start)
        new = builder.build()
        if base is not None:
            new = attrs.evolve(new, **{name: np.concatenate([getattr(base.columns, name), getattr(new, name)])
                                       for name in (*_ARRAYS, "source")})
        all_offsets = np.array(offsets, dtype=np.int64)
        if base is not None:
            all_offsets = np.concatenate([base.offsets, all_offsets])
        if base is None or end != base.end:
            _save(path, _Cached(new, problems, end, last_line, all_offsets), stat.st_ino, _fingerprint(f, end))
    return ColumnsRead(new, problems + tail_problems, all_offsets, stat.st_ino)
