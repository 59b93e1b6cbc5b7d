"""A file store's own files: backups under names no other file holds.

A backup takes a name no file has (``os.link`` and ``O_EXCL`` fail rather than replace, and never follow a
symlink planted there), so two backups made in the same second are two files.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import attrs


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


def non_empty_path(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """An attrs validator: a store option that names a file is not blank."""
    if not value.strip():
        raise ValueError(f"{attribute.name}={value!r} must name a file")
