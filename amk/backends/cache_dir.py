"""Where amk keeps what it builds and measures once per machine: compiled kernels, the measured bandwidth.

``$AMK_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/amk``, else ``~/.cache/amk``. Compiled kernels go to
``$AMK_BUILD_DIR`` when that is set (else the same folder): a test session measures into a folder of its
own while it loads the kernels built once for the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amk.core.errors import ValidationError
from amk.core.inputs import parse_json
from amk.io.files import write_atomically

CACHE_ENV_VAR = "AMK_CACHE_DIR"
BUILD_ENV_VAR = "AMK_BUILD_DIR"
MEASUREMENT_SUFFIX = "_bandwidth.json"  # the cached once-per-machine measurements end in this


def cache_root() -> Path:
    """amk's cache folder, without creating it: ``$AMK_CACHE_DIR``, ``$XDG_CACHE_HOME/amk`` or ``~/.cache/amk``."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "amk"


def kernel_cache_root() -> Path:
    """Where compiled kernels are cached, without creating it: ``$AMK_BUILD_DIR``, else ``cache_root()``."""
    explicit = os.environ.get(BUILD_ENV_VAR)
    return Path(explicit) if explicit else cache_root()


def cache_dir() -> Path:
    """amk's cache folder (created on first use): measurements such as the bandwidth."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def kernel_cache_dir() -> Path:
    """The compiled kernels' cache folder (created on first use)."""
    root = kernel_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Hold the lock of a kernel's build folder while torch builds or loads it.

    torch.utils.cpp_extension serialises builds with a ``lock`` file that a process killed mid-build
    leaves behind, and every later build of that kernel then waits for it forever. This lock is an
    flock, which the kernel drops when its holder dies: under it no other amk process is building, so a
    ``lock`` file found there is such a leftover and is removed."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "amk-build.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            (build_dir / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _cpuinfo(field: str) -> str | None:
    """The value of the first /proc/cpuinfo line that starts with ``field`` (None: no such line, or no file)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model_name() -> str:
    """The CPU's marketing name, e.g. ``AMD EPYC 7B13`` (falls back to the platform's processor string)."""
    name = _cpuinfo("model name")
    return name if name is not None else platform.processor() or platform.machine() or "unknown cpu"


def _cpu_flags() -> str:
    return _cpuinfo("flags") or ""


def machine_fingerprint() -> str:
    """A short hash of what a ``-march=native`` build depends on: CPU model and flags, OS and machine."""
    text = f"{cpu_model_name()}|{_cpu_flags()}|{platform.system()}|{platform.machine()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_cached(name: str) -> dict[str, Any]:
    """The JSON object cached under ``name`` (empty when absent or unreadable: it is then re-measured)."""
    path = cache_dir() / name
    try:
        data = parse_json(path.read_bytes(), max_bytes=None)
    except (OSError, ValidationError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cached(name: str, data: dict[str, Any]) -> None:
    """Write ``data`` under ``name`` atomically (a reader never sees half a file; FileWriteError when the cache
    directory cannot be written)."""
    write_atomically(cache_dir() / name, json.dumps(data, indent=2, sort_keys=True), "the cache file")


def forget_measurements() -> list[Path]:
    """Delete the cached once-per-machine measurements (bandwidths) so the next use measures again."""
    removed = []
    for path in cache_dir().glob(f"*{MEASUREMENT_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
