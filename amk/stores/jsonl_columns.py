"""The jsonl store's columns cache: ``<file>.columns.npz``, so training reads do not re-parse the corpus.

The corpus is append-only, so the cache keeps the columns of every complete line up to a byte offset,
with the problems found there and where each record's line starts (so ``known_ids`` can re-read the few
lines it needs). A later read checks that the file still holds the bytes cached (same inode, and the same
SHA-1 of every byte up to the offset) and parses only what was appended since. Anything else (a migrated,
rewritten or truncated file, a byte changed in place anywhere, an unreadable or foreign cache) is a full
re-read. Hashing is skipped only when the file's size, mtime and ctime are those it had when the cache
was written and were already 2 s old then (file times are coarse: a change within the same tick as the
cached one could otherwise go unseen). The cache is written next to the corpus with numpy's plain format
(no pickle), to a new temporary file renamed over the old one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import numpy as np

from amk.core.columns import ColumnsBuilder, CorpusColumns
from amk.core.devices import Device
from amk.core.records import Record
from amk.core.store import CorpusProblem
from amk.core.workload import Workload
from amk.stores.jsonl_fast import ColumnsRow

CACHE_VERSION = 3  # 2: each record's line offset; 3: the SHA-1 of the cached bytes and the file's times
_ARRAYS = ("workload_index", "device_index", "config_index", "latency_us", "bound_us", "verdict", "kind", "timestamp")
SETTLED_NS = 2_000_000_000  # file times this much older than the cache's writing are trusted unchanged
_BLOCK = 1 << 22

# (file, start offset, first line number, rows=) -> per line: (line number, Record, ColumnsRow (with
# rows=True: see amk.stores.jsonl_fast), CorpusProblem or None for a blank line, the offset after the line
# or None for an incomplete last line)
LineReader = Callable[..., Iterator[tuple[int, "Record | ColumnsRow | CorpusProblem | None", "int | None"]]]


def cache_path(corpus: Path) -> Path:
    return corpus.with_name(corpus.name + ".columns.npz")


def _hash_range(digest: Any, f: IO[bytes], start: int, end: int) -> Any:
    """``digest`` updated with the bytes of ``f`` from ``start`` to ``end``."""
    fd, pos = f.fileno(), start
    while pos < end:
        block = os.pread(fd, min(_BLOCK, end - pos), pos)
        if not block:
            break
        digest.update(block)
        pos += len(block)
    return digest


def _file_times(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


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
    """The cache of the file with ``inode``, or None when there is none usable (any damage: it is only a cache)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION or meta.get("inode") != inode:
                return None
            arrays = {name: data[name] for name in _ARRAYS}
            offsets = data["offsets"]
            arrays["source"] = np.empty(len(meta["source"]), dtype=object)
            arrays["source"][:] = meta["source"]
        columns = CorpusColumns(
            workloads=[Workload(k, n, s) for k, n, s in meta["workloads"]],
            devices=[Device(**d) for d in meta["devices"]],
            configs=meta["configs"], **arrays)
        problems = [CorpusProblem(w, r) for w, r in meta["problems"]]
        cached = _Cached(columns, problems, int(meta["end"]), int(meta["lines"]), offsets)
        if len(offsets) != len(columns) or not isinstance(meta["digest"], str):
            return None
    except Exception:  # noqa: BLE001 - a damaged or foreign cache is no cache: the corpus is read in full
        return None
    return cached, meta


def _save(path: Path, cached: _Cached, stat: os.stat_result, digest: str) -> None:
    cols = cached.columns
    meta = {
        "version": CACHE_VERSION, "inode": stat.st_ino, "end": cached.end, "lines": cached.lines,
        "digest": digest, "file_times": _file_times(stat), "saved_ns": time.time_ns(),
        "workloads": [[w.kind, w.name, w.shape] for w in cols.workloads],
        "devices": [attrs.asdict(d) for d in cols.devices],
        "configs": cols.configs,
        "problems": [[p.where, p.reason] for p in cached.problems],
        "source": cols.source.tolist() if cols.source is not None else [None] * len(cols),
    }
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), offsets=cached.offsets,
                     **{name: getattr(cols, name) for name in _ARRAYS})
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass  # the cache only saves time: a read-only directory or a full disk must not fail a read
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


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


def _reusable(f: IO[bytes], stat: os.stat_result, cached: _Cached, meta: dict[str, Any]) -> tuple[bool, Any]:
    """(whether ``cached`` holds the file's bytes up to its offset, the SHA-1 of those bytes or None when it was
    not needed: the file is unchanged since the cache was written)."""
    if cached.end > stat.st_size:
        return False, None
    times = meta.get("file_times")
    if times == _file_times(stat) and meta.get("saved_ns", 0) - max(times[1], times[2]) > SETTLED_NS:
        return True, None
    digest = _hash_range(hashlib.sha1(), f, 0, cached.end)
    return digest.hexdigest() == meta["digest"], digest


def cached_columns(corpus: Path, f: IO[bytes], read_lines: LineReader, *, fast: bool = True) -> ColumnsRead:
    """Every readable record of the corpus open as ``f`` (at ``corpus``) as columns, every problem, and where each
    record's line starts, reusing and refreshing the cache.

    ``read_lines(f, start, first_lineno, rows=fast)`` reads the lines from offset ``start`` (see
    ``LineReader``); ``fast=False`` reads every line through ``record_from_dict`` (the same columns, slower).
    """
    path = cache_path(corpus)
    stat = os.fstat(f.fileno())
    base: _Cached | None = None
    digest = None
    loaded = _load(path, stat.st_ino) if path.exists() else None
    if loaded is not None:
        cached, meta = loaded
        reusable, digest = _reusable(f, stat, cached, meta)
        if reusable:
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
        if base is None or digest is None:
            digest, start = hashlib.sha1(), 0
        _save(path, _Cached(new, problems, end, last_line, all_offsets), stat,
              _hash_range(digest, f, start, end).hexdigest())
    return ColumnsRead(new, problems + tail_problems, all_offsets, stat.st_ino)
