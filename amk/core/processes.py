"""Child processes that run native code: killing a process group whole, and saying how a process ended.

Shared by the measurement worker (:mod:`amk.tuning.isolation`) and the backends that start programs
(:mod:`amk.backends.command`).
"""

from __future__ import annotations

import os
import signal


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid``; a group already gone (or not ours) is no error."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def describe_exit(returncode: int) -> str:
    """How a process ended, from its return code: ``killed by signal 11 (SIGSEGV)`` / ``exited with code 3``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"
