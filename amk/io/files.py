"""Files amk creates: exclusively, under names nobody else holds, complete or not at all.

Every file amk writes for a user (an export, a model, a tune state, report or plot) is written to a fresh
temporary file in the target's directory (``mkstemp``: created with ``O_EXCL``, so it never opens a file
or symlink planted at a predictable name), flushed and fsynced, then renamed over the target (a rename
replaces a symlink at the target, it never writes through it). A kill at any point leaves the old file
or the new one, never a torn one. (A store's backups: ``amk.stores.files``.)

A failure (a full disk, a read-only directory) is a :class:`~amk.core.errors.FileWriteError`: one
sentence naming the file and what to do, which the CLI prints as one ``amk: error:`` line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from amk.core.errors import FileWriteError

_FULL, _DENIED = "free disk space or choose another directory", "check its permissions or choose another directory"
_ADVICE = {errno.ENOSPC: _FULL, errno.EDQUOT: _FULL, errno.EACCES: _DENIED, errno.EPERM: _DENIED,
           errno.EROFS: "the file system is read-only: choose another directory"}


def write_error(what: str, path: str | os.PathLike, exc: OSError) -> FileWriteError:
    """The FileWriteError for an OSError met writing ``what`` (``"the export"``) at ``path``."""
    advice = _ADVICE.get(exc.errno or 0, "check the path, its directory and free disk space")
    reason = exc.strerror or str(exc)
    return FileWriteError(f"cannot write {what} {os.fspath(path)}: {reason}; {advice}.")


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread, for a moment)."""
    with contextlib.suppress(OSError, ValueError, IndexError, StopIteration), open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    return 0o022


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened or synced
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, what: str, *, mode: str = "w") -> Iterator[IO]:
    """A new file (``mode`` "w" or "wb", permissions 0644 less the umask) that replaces ``path`` only when the
    block ends without an error, flushed and fsynced; otherwise it is removed and ``path`` left as it was.
    ``what`` names the file in errors (``"the tune report"``). Raises FileWriteError."""
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, 0o644 & ~_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
        _fsync_directory(target.parent)
    except OSError as exc:
        raise write_error(what, target, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_atomically(path: str | os.PathLike, data: str | bytes, what: str) -> None:
    """Write ``data`` as the whole of ``path``, atomically (see :func:`atomic_file`); raises FileWriteError."""
    with atomic_file(path, what, mode="wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def file_identity(path: str | os.PathLike) -> tuple:
    """What makes two paths one file, however they are spelled (``a.jsonl``, ``./a.jsonl``, a symlink, a hard
    link): its device and inode; for a file that does not exist yet, its resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("file", st.st_dev, st.st_ino)
