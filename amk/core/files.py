"""Files amk creates: exclusively, under names nobody else holds, complete or not at all.

Every file amk writes for a user (an export, a backup, a model, a tune state, report or plot) is written
to a fresh temporary file in the target's directory (``mkstemp``: created with ``O_EXCL``, so it never
opens a file or symlink planted at a predictable name), flushed and fsynced, then renamed over the
target (a rename replaces a symlink at the target, it never writes through it). A kill at any point
leaves the old file or the new one, never a torn one. A backup takes a name no other file holds
(``os.link`` fails rather than replace), so two backups in the same second are two files.

A failure (a full disk, a read-only directory) is a :class:`~amk.core.errors.FileWriteError`: one
sentence naming the file and what to do, which the CLI prints as one ``amk: error:`` line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from amk.core.errors import FileWriteError

_ADVICE = {
    28: "free disk space or choose another directory",  # ENOSPC
    122: "free disk space (the quota is exhausted) or choose another directory",  # EDQUOT
    13: "check the directory's permissions or choose another one",  # EACCES
    1: "check the directory's permissions or choose another one",  # EPERM
    30: "the file system is read-only: choose another directory",  # EROFS
}


def write_error(what: str, path: str | os.PathLike, exc: OSError) -> FileWriteError:
    """The FileWriteError for an OSError met writing ``what`` (``"the export"``) at ``path``."""
    advice = _ADVICE.get(exc.errno or 0, "check the path, its directory and free disk space")
    reason = exc.strerror or str(exc)
    return FileWriteError(f"cannot write {what} {os.fspath(path)}: {reason}; {advice}.")


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread, for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened or synced
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, what: str, *, mode: str = "w", encoding: str | None = "utf-8",
                file_mode: int = 0o644) -> Iterator[IO]:
    """A new file to write in place of ``path``: it replaces ``path`` only when the block ends without an
    error (after flush and fsync); otherwise it is removed and ``path`` is left as it was.

    ``what`` names the file in errors (``"the tune report"``). ``mode`` is ``"w"`` or ``"wb"``;
    ``file_mode`` the permissions the file gets (less the umask). Raises FileWriteError.
    """
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, file_mode & ~_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
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


def write_atomically(path: str | os.PathLike, data: str | bytes, what: str, *, file_mode: int = 0o644) -> None:
    """Write ``data`` as the whole of ``path``, atomically (see :func:`atomic_file`); raises FileWriteError."""
    with atomic_file(path, what, mode="wb" if isinstance(data, bytes) else "w", file_mode=file_mode) as f:
        f.write(data)


def unique_name(directory: Path, stem: str, suffix: str = "") -> Path:
    """A name in ``directory`` no file has now: ``STEM-YYYYmmdd-HHMMSS-RANDOM SUFFIX``. A caller that creates
    it must still do so exclusively (``O_EXCL``, ``os.link``): another process may take it first."""
    return directory / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}{suffix}"


def link_unique(source: Path, directory: Path, stem: str, suffix: str = "") -> Path:
    """A new hard link to ``source`` under a unique name (see :func:`unique_name`); never replaces a file.

    What a backup is made with: instant, no copy, and the original's bytes stay there even after the
    original's path is replaced by a rewritten file. Raises OSError (EXDEV, EPERM) where the file system
    has no hard links; the caller then copies with :func:`create_exclusive`.
    """
    for _ in range(100):
        candidate = unique_name(directory, stem, suffix)
        try:
            os.link(source, candidate, follow_symlinks=False)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no unique name for {stem} in {directory}")


def create_exclusive(directory: Path, stem: str, suffix: str = "") -> tuple[int, Path]:
    """(fd, path) of a new empty file under a unique name, created with ``O_EXCL | O_NOFOLLOW``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        candidate = unique_name(directory, stem, suffix)
        try:
            return os.open(candidate, flags, 0o644), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no unique name for {stem} in {directory}")


def file_identity(path: str | os.PathLike) -> tuple:
    """What makes two paths one file, however they are spelled (``a.jsonl``, ``./a.jsonl``, a symlink, a hard
    link): its device and inode; for a file that does not exist yet, its resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("file", st.st_dev, st.st_ino)
