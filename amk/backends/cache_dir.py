"""Where amk keeps what it builds and measures once per machine: compiled kernels, the measured bandwidth.

``$AMK_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/amk``, else ``~/.cache/amk``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

CACHE_ENV_VAR = "AMK_CACHE_DIR"
MEASUREMENT_SUFFIX = "_bandwidth.json"  # the cached once-per-machine measurements end in this


def cache_dir() -> Path:
    """amk's cache folder (created on first use)."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        root = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "amk"
    root.mkdir(parents=True, exist_ok=True)
    return root


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
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cached(name: str, data: dict[str, Any]) -> None:
    """Write ``data`` under ``name`` atomically (a reader never sees half a file)."""
    path = cache_dir() / name
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def forget_measurements() -> list[Path]:
    """Delete the cached once-per-machine measurements (bandwidths) so the next use measures again."""
    removed = []
    for path in cache_dir().glob(f"*{MEASUREMENT_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
