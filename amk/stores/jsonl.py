"""The ``jsonl`` store: one record per line, current schema, append-only; git-friendly and the default.

Appends take an exclusive OS file lock (``flock``) and write whole lines, so concurrent writers from
several processes never interleave; ``fsync=true`` also forces each append to disk before it returns.

A writer killed mid-write leaves a torn last line (no newline). Readers report it and read everything
before it; the next append, under the lock, moves the fragment to ``<file>.torn`` (so it is set aside,
never silently lost, and never glued to the next record) and goes on. Fragments in ``<file>.torn`` stay
reported by ``problems()`` until someone deletes that file. Malformed lines and records from a newer
schema are reported with their line numbers, counted in ``stats``, and left in the file untouched.

Repeated measurements of the same (workload, device, config, backend version) are separate lines, i.e.
samples; ``query``/``columns`` return each, and ``best_configs`` aggregates best-of (a config's fastest
PASS sample), as in :mod:`amk.core.store`.

Column reads go through the columns cache (:mod:`amk.stores.jsonl_columns`) and parse only the lines
appended since; a line amk wrote is turned into its columns without a ``Record`` (:mod:`amk.stores.
jsonl_fast`, about 13 us a line against 43 us through ``record_from_dict``; any other line still goes
through it). ``query`` parses every record; for corpora past a few hundred thousand records use the
``sqlite`` store (``amk corpus copy jsonl:PATH sqlite:PATH``).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import attrs

if TYPE_CHECKING:
    import numpy as np

from amk.core.columns import KIND_CODES, VERDICT_CODES, ColumnsBuilder, CorpusColumns, config_key
from amk.core.errors import RecordError, StoreError, ValidationError
from amk.core.inputs import MAX_RECORD_BYTES, parse_json
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import Record, record_from_dict, record_id, record_to_json
from amk.core.store import CorpusProblem, CorpusQuery, CorpusStats, Store, match_key, shape_counts
from amk.core.workload import Workload
from amk.io.files import file_identity
from amk.stores.files import create_exclusive, link_unique, non_empty_path

if TYPE_CHECKING:
    from amk.stores.jsonl_columns import ColumnsRead
    from amk.stores.jsonl_fast import ColumnsRow


_FOREIGN_MAGIC = ((b"SQLite format 3\x00", "a SQLite database: open it as sqlite:{path}"),
                  (b"PK\x03\x04", "a zip archive (an .npz?)"),
                  (b"\x1f\x8b", "a gzip file: import it with 'amk corpus import {path}'"),
                  (b"\x93NUMPY", "a numpy array file"))


def corpus_file_problem(head: bytes) -> str | None:
    """Why bytes at the start of a file show it is not a jsonl corpus, or None when it may be one.

    A corpus is UTF-8 text whose first non-blank character opens a JSON object (or an empty file).
    """
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return f"it is {what}"
    if b"\x00" in head:
        return "it holds binary data (NUL bytes)"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    stripped = head.lstrip()
    if stripped and not stripped.startswith(b"{"):
        return "its first line is not a JSON object"
    return None


_LINE_LIMIT = MAX_RECORD_BYTES + 2  # a record's JSON, its newline, and one byte to tell it is longer


def _bounded_lines(f: IO[bytes]) -> Iterator[bytes | int]:
    """The lines of ``f`` from where it is (as ``for line in f``), but none held in memory past the record size
    limit: a longer line gives its length instead (negative when it is the file's last, without a newline)."""
    readline = f.readline
    while raw := readline(_LINE_LIMIT):
        if len(raw) < _LINE_LIMIT or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while more := readline(1 << 20):
            size += len(more)
            if more.endswith(b"\n"):
                break
        else:
            size = -size
        yield size


class JsonlStore(Store):
    name: ClassVar[str] = "jsonl"
    url_schemes: ClassVar[tuple[str, ...]] = ("jsonl",)

    @attrs.frozen
    class Options:
        path: str = attrs.field(default=".amk/corpus.jsonl", validator=non_empty_path)
        fsync: bool = False  # fsync after every append: durable across power loss, slower
        columns_cache: bool = True  # keep <file>.columns.npz so training reads parse only new lines

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self.path = Path(self.options.path)
        self._problems: list[CorpusProblem] = []
        # The columns of the file as last read, by (inode, size, mtime, ctime): one command asks several times.
        self._columns_memo: tuple | None = None

    @classmethod
    def options_from_url(cls, url: str) -> dict[str, Any]:
        path = url.split(":", 1)[1]
        if not path:
            raise StoreError(f"store URL {url!r} names no file; write it as jsonl:PATH.")
        return {"path": path}

    def describe(self) -> str:
        return f"jsonl:{self.path}"

    def identity(self) -> Hashable:
        """The file itself (device and inode; its resolved path while it does not exist)."""
        return file_identity(self.path)

    def _lines(self, records: Iterable[Record]) -> list[str]:
        """Each record's line; RecordError, before anything is written, for one over the size limit."""
        lines = []
        for r in records:
            line = record_to_json(r) + "\n"
            if len(line) > MAX_RECORD_BYTES:
                raise RecordError(f"a record of {r.workload.name!r} is {len(line):,} bytes of JSON, over the limit of "
                                  f"{MAX_RECORD_BYTES:,}; shorten its notes or extra fields.")
            lines.append(line)
        return lines

    def append(self, records: Iterable[Record]) -> int:
        lines = self._lines(records)
        if not lines:
            return 0
        data = "".join(lines).encode()
        with self._locked("append to") as f:
            self._write(f, data)
        return len(lines)

    def append_new(self, records: Mapping[str, Record], *, identity: Callable[[Record], str] = record_id) -> int:
        """Under the file's lock: the records the file does not hold (``known_ids``), then their lines."""
        if not records:
            return 0
        lines = dict(zip(records, self._lines(records.values())))
        with self._locked("append to") as f:
            known = self.known_ids(records, identity=identity)
            new = [line for rid, line in lines.items() if rid not in known]
            if new:
                self._write(f, "".join(new).encode())
        return len(new)

    def _write(self, f: IO[bytes], data: bytes) -> None:
        f.write(data)
        f.flush()
        if self.options.fsync:
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def _locked(self, doing: str, *, create: bool = True) -> Iterator[IO[bytes]]:
        """The corpus file, open for appending under its exclusive lock, checked to be a jsonl corpus.

        Held by every writer (appends, migrate). A writer that waited for the lock of a file that was
        replaced meanwhile (``migrate`` renames a rewritten file over it) lets go and takes the new file's:
        it never writes to a file that is no longer the corpus.
        """
        try:
            while True:
                if create:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                f = self.path.open("a+b" if create else "rb+")
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                    try:
                        current = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
                    except FileNotFoundError:
                        current = False
                    if current:
                        self._check_corpus(f)
                        self._set_aside_torn_tail(f)
                        yield f
                        return
                finally:
                    f.close()  # closing releases the lock
        except OSError as exc:
            raise StoreError(f"cannot {doing} {self.path}: {exc.strerror}; check the path, its permissions and "
                             "free disk space.") from None

    def _check_corpus(self, f: IO[bytes]) -> None:
        """StoreError unless the open file may be a jsonl corpus (see ``corpus_file_problem``)."""
        head = os.pread(f.fileno(), 4096, 0)
        problem = corpus_file_problem(head)
        if problem is not None:
            raise StoreError(f"{self.path} is not a jsonl corpus: {problem.format(path=self.path)}; nothing was "
                             "read or written. Point the store at a jsonl file.")

    @property
    def torn_path(self) -> Path:
        """Where torn last lines are set aside."""
        return self.path.with_name(self.path.name + ".torn")

    def _set_aside_torn_tail(self, f) -> None:
        """Under the lock: move a torn last line (a writer killed mid-write) to the side file."""
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        with self.path.open("rb") as r:
            r.seek(end - 1)
            if r.read(1) == b"\n":
                return
            # Find the start of the torn line: the byte after the last newline.
            pos, block = end, 1 << 16
            start = 0
            while pos > 0:
                step = min(block, pos)
                r.seek(pos - step)
                chunk = r.read(step)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    start = pos - step + cut + 1
                    break
                pos -= step
            r.seek(start)
            fragment = r.read(end - start)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # never through a symlink
        try:
            fd = os.open(self.torn_path, flags, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd, _ = create_exclusive(self.path.parent, self.torn_path.name)  # a symlink planted there: a file of its own
        with os.fdopen(fd, "ab") as side:
            side.write(fragment + b"\n")
            side.flush()
            os.fsync(side.fileno())
        os.truncate(self.path, start)
        f.seek(0, os.SEEK_END)

    def _open_for_reading(self) -> IO[bytes]:
        try:
            f = self.path.open("rb")
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}; check the path and permissions.") from None
        try:
            self._check_corpus(f)
        except BaseException:
            f.close()
            raise
        return f

    def _read_lines(self, f, start: int = 0, first_lineno: int = 1, *, rows: bool = False
                    ) -> Iterator[tuple[int, Record | ColumnsRow | CorpusProblem | None, int | None]]:
        """Each line from byte ``start``: (line number, its record or problem or None when blank, end offset).

        With ``rows``, a well-formed current-schema line gives its ``ColumnsRow`` instead of a Record (see
        :mod:`amk.stores.jsonl_fast`); every other line is read as without.
        """
        fast = None
        if rows:
            from amk.stores.jsonl_fast import FastRows

            fast = FastRows().row
        f.seek(start)
        offset = start
        for lineno, raw in enumerate(_bounded_lines(f), first_lineno):
            if type(raw) is int:  # a line over the size limit, read past without keeping it
                offset += abs(raw)
                yield lineno, CorpusProblem(f"{self.path}:{lineno}", f"a line of {abs(raw):,} bytes, over the limit "
                                            f"of {MAX_RECORD_BYTES:,} for a record"), offset if raw > 0 else None
                if raw < 0:
                    return
                continue
            offset += len(raw)
            if fast is not None:  # first: a line with its newline, else no row
                row = fast(raw)
                if row is not None:
                    yield lineno, row, offset
                    continue
            where = f"{self.path}:{lineno}"
            if not raw.endswith(b"\n"):
                if raw.strip():
                    # A writer holds the lock while it writes whole lines, so a line without its newline
                    # is one being written now or left by a writer that was killed.
                    yield lineno, CorpusProblem(
                        where, f"incomplete last line ({len(raw)} bytes without a newline: a writer was killed "
                               f"mid-write, or is still writing); the next append sets it aside in {self.torn_path}"
                    ), None
                return
            if not raw.strip():
                yield lineno, None, offset
                continue
            try:
                data = parse_json(raw)
            except ValidationError as exc:
                yield lineno, CorpusProblem(where, str(exc)), offset
                continue
            try:
                yield lineno, record_from_dict(data, where=where), offset
            except RecordError as exc:
                yield lineno, CorpusProblem(where, str(exc).removeprefix(where + ": ")), offset

    def _scan(self) -> Iterator[Record]:
        self._problems = []
        if not self.path.exists():
            return
        with self._open_for_reading() as f:
            for _, item, _ in self._read_lines(f):
                if isinstance(item, CorpusProblem):
                    self._problems.append(item)
                elif item is not None:
                    yield item

    # -- columns, from the cache (see amk.stores.jsonl_columns) ----------------------------------------

    def _all_columns(self) -> CorpusColumns:
        if not self.options.columns_cache:
            return self._read_columns()
        return self._columns_read().columns

    def _read_columns(self) -> CorpusColumns:
        """The whole file's columns without the cache: what ``CorpusColumns.from_records(self._scan())`` gives."""
        from amk.stores.jsonl_columns import add_item

        self._problems = []
        builder = ColumnsBuilder()
        if self.path.exists():
            with self._open_for_reading() as f:
                for _, item, _ in self._read_lines(f, rows=True):
                    add_item(builder, self._problems, item)
        return builder.build()

    def _columns_read(self) -> ColumnsRead:
        """The whole file's columns and line offsets through the cache (the file as it is now)."""
        from amk.stores.jsonl_columns import SETTLED_NS, ColumnsRead, cached_columns

        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._columns_memo = None
            self._problems = []
            import numpy as np

            return ColumnsRead(CorpusColumns.from_records([]), [], np.zeros(0, dtype=np.int64), None)
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}; check the path and permissions.") from None
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if self._columns_memo is not None and self._columns_memo[0] == version:
            read = self._columns_memo[1]
        else:
            with self._open_for_reading() as f:
                try:
                    read = cached_columns(self.path, f, self._read_lines)
                except OSError as exc:
                    raise StoreError(f"cannot read {self.path}: {exc.strerror}; check the path and permissions.") from None
            # Kept for the next call only once the file's times are settled: an edit within the same tick of
            # the file system's clock would leave them unchanged (see amk.stores.jsonl_columns).
            settled = time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > SETTLED_NS
            self._columns_memo = (version, read) if settled else None
        self._problems = list(read.problems)
        return read

    def known_ids(self, records: Mapping[str, Record], *,
                  identity: Callable[[Record], str] | None = None) -> set[str]:
        """Candidates from the columns cache (see ``Store.known_ids``); only their lines are re-read and hashed.

        The cache reads what was appended since it was written, so a record another process appended
        before the call is seen. Offsets hold for the file the cache read: if it was replaced since
        (``amk corpus migrate``), every record is read instead.
        """
        import numpy as np

        identity = identity or record_id
        if not records or not self.options.columns_cache:
            return super().known_ids(records, identity=identity)

        read = self._columns_read()
        cols = read.columns
        wanted = {match_key(r) for r in records.values()}
        workload_keys = [w.key for w in cols.workloads]
        config_keys = [config_key(c) for c in cols.configs]
        near = np.ones(len(cols), dtype=bool)
        for part, labels, index in ((0, workload_keys, cols.workload_index), (1, cols.devices, cols.device_index),
                                    (2, config_keys, cols.config_index)):
            asked = {k[part] for k in wanted}
            near &= np.array([label in asked for label in labels], dtype=bool)[index]
        lines = []
        for row in np.flatnonzero(near).tolist():
            latency = float(cols.latency_us[row])
            key = (workload_keys[cols.workload_index[row]], cols.devices[cols.device_index[row]],
                   config_keys[cols.config_index[row]], VERDICT_CODES[cols.verdict[row]].value,
                   KIND_CODES[cols.kind[row]].value, None if np.isnan(latency) else latency)
            if key in wanted:
                lines.append(int(read.offsets[row]))
        found: set[str] = set()
        if not lines:
            return found
        with self._open_for_reading() as f:
            if os.fstat(f.fileno()).st_ino != read.inode:
                return super().known_ids(records, identity=identity)
            for offset in lines:
                f.seek(offset)
                try:
                    rid = identity(record_from_dict(parse_json(f.readline()), where=f"{self.path}@{offset}"))
                except (ValidationError, RecordError):
                    continue  # the cache read this line as a record: only a replaced file reads otherwise
                if rid in records:
                    found.add(rid)
        return found

    def columns(self, query: CorpusQuery | None = None) -> CorpusColumns:
        cols = self._all_columns()
        if query is None or query == CorpusQuery():
            return cols
        return cols.take(_query_mask(cols, query)).compact()

    def count(self, query: CorpusQuery | None = None) -> int:
        cols = self._all_columns()
        return int(_query_mask(cols, query or CorpusQuery()).sum())

    def workloads(self, device: str | None = None, workload_kind: str | None = None) -> list[Workload]:
        cols = self.columns(CorpusQuery(device=device, workload_kind=workload_kind))
        return sorted(cols.workloads, key=lambda w: w.key)

    def stats(self) -> CorpusStats:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return CorpusStats.of(())  # nothing to count: no columns to build
        cols = self._all_columns()
        return stats_of_columns(cols, problems=len(self.problems()))

    def migrate(self) -> str:
        """Rewrite the file in the current schema, under the file's lock for the whole run; unreadable lines
        are kept verbatim and reported. A file already current is left as it is (no backup is made).

        The rewrite goes to a new temporary file, which is renamed over the corpus; the original stays as a
        backup (a hard link to it under a unique name). Appends wait for the lock, then write to the file
        that is the corpus by then, so none is lost.
        """
        if not self.path.exists():
            return f"{self.path}: no corpus yet, nothing to migrate"
        with self._locked("migrate", create=False) as f:
            f.seek(0)
            original = f.read()
            rewritten, upgraded, kept = self._rewritten(original)
            note = f"; {kept} unreadable lines kept as they were (see 'amk corpus validate')" if kept else ""
            if rewritten == original:
                return (f"{self.path}: every record is already in schema {SCHEMA_VERSION}; nothing to migrate, "
                        f"nothing written{note}")
            backup = self._replace_keeping_backup(f, rewritten)
        return f"{self.path}: {upgraded} records rewritten in schema {SCHEMA_VERSION}, backup at {backup}{note}"

    def _rewritten(self, original: bytes) -> tuple[bytes, int, int]:
        """(the file's bytes with every readable record in the current schema, records rewritten, lines kept)."""
        out: list[bytes] = []
        upgraded = kept = 0
        for lineno, raw in enumerate(original.splitlines(keepends=True), 1):
            if not raw.strip():
                continue
            try:
                record = record_from_dict(parse_json(raw), where=f"{self.path}:{lineno}")
            except (ValidationError, RecordError):
                out.append(raw if raw.endswith(b"\n") else raw + b"\n")
                kept += 1
                continue
            out.append((record_to_json(record) + "\n").encode())
            upgraded += 1
        return b"".join(out), upgraded, kept

    def _replace_keeping_backup(self, f: IO[bytes], data: bytes) -> Path:
        """Under the lock held on ``f`` (the corpus): a backup of it under a unique name, then ``data`` renamed
        over it. Returns the backup's path."""
        directory = self.path.parent
        try:
            backup = link_unique(self.path, directory, f"{self.path.name}.bak")
        except OSError:  # no hard links here: copy into a new file no one else can have opened
            fd, backup = create_exclusive(directory, f"{self.path.name}.bak")
            with os.fdopen(fd, "wb") as out:
                f.seek(0)
                shutil.copyfileobj(f, out)
                out.flush()
                os.fsync(out.fileno())
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".migrating", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, os.fstat(f.fileno()).st_mode & 0o7777)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return backup

    def problems(self) -> list[CorpusProblem]:
        """Unreadable lines found by the last full read, and the torn lines set aside in ``<file>.torn``."""
        return list(self._problems) + self._torn_problems()

    def _torn_problems(self) -> list[CorpusProblem]:
        out = []
        for side in sorted(self.path.parent.glob(self.torn_path.name + "*")):
            if side.is_symlink() or side.name not in (self.torn_path.name,) and not side.name.startswith(
                    self.torn_path.name + "-"):
                continue  # a symlink planted at the name is not amk's: never read through it
            try:
                data = side.read_bytes()
            except OSError as exc:
                out.append(CorpusProblem(str(side), f"cannot be read: {exc.strerror}"))
                continue
            out += [CorpusProblem(f"{side}:{lineno}",
                                  f"a torn line ({len(line)} bytes) set aside from {self.path} after a writer was "
                                  "killed mid-write; its record is incomplete: re-measure it, then delete this file")
                    for lineno, line in enumerate(data.split(b"\n"), 1) if line.strip()]
        return out


def _query_mask(cols: CorpusColumns, query: CorpusQuery) -> np.ndarray:
    """The rows of ``cols`` that ``query`` matches (the same rows as ``CorpusQuery.matches``)."""
    import numpy as np
    keep = cols.mask(device=query.device, workload_kind=query.workload_kind,
                     verdicts=None if query.verdict is None else [query.verdict],
                     kinds=None if query.kind is None else [query.kind])
    if query.workload_name is not None or query.workload_shape is not None:
        shape = None if query.workload_shape is None else dict(query.workload_shape)
        ids = [i for i, w in enumerate(cols.workloads)
               if (query.workload_name is None or w.name == query.workload_name) and (shape is None or w.shape == shape)]
        keep &= np.isin(cols.workload_index, ids)
    with np.errstate(invalid="ignore"):
        if query.since is not None:
            keep &= cols.timestamp >= query.since
        if query.until is not None:
            keep &= cols.timestamp < query.until
    return keep


def stats_of_columns(cols: CorpusColumns, problems: int) -> CorpusStats:
    """``CorpusStats.of`` the records behind ``cols``, counted from the columns."""
    import numpy as np
    def counts(labels: list[str], index: np.ndarray) -> dict[str, int]:
        out: dict[str, int] = collections.Counter()
        for i, n in zip(*np.unique(index, return_counts=True)):
            out[labels[int(i)]] += int(n)
        return dict(sorted(out.items()))

    labels = [f"{w.kind}:{w.name}" for w in cols.workloads]
    shapes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for i, n in zip(*np.unique(cols.workload_index, return_counts=True)):
        w = cols.workloads[int(i)]
        shapes[f"{w.kind}:{w.name}"][json.dumps(w.shape, sort_keys=True)] += int(n)
    return CorpusStats(len(cols), counts([d.name for d in cols.devices], cols.device_index),
                       counts(labels, cols.workload_index),
                       counts([k.value for k in KIND_CODES], cols.kind),
                       counts([v.value for v in VERDICT_CODES], cols.verdict), shape_counts(shapes), problems)
