"""A backend plugin that misbehaves for real (segfault, abort, exit, hang, raise), installed as a real
distribution with an ``amk`` entry point, so a measurement worker process rebuilds it through the registry."""

from __future__ import annotations

import os
from pathlib import Path

from tests.plugin_helpers import write_distribution

BACKEND_NAME = "misbehave"

BACKEND_MODULE = '''
import ctypes
import os
import subprocess
import time

import attrs

import amk
from amk.core.errors import InvalidConfigError
from amk.core.backend import Backend
from amk.core.space import Knob, SearchSpace
from amk.core.records import Measurement, MeasurementKind, Verdict


class MisbehavingBackend(Backend):
    """x in 0..n-1, latency 100 + x us; the configs named in the options fail in the way they say."""

    name = "misbehave"
    version = "1"
    measurement_kind = MeasurementKind.PREDICTED  # no A/B re-measurement: one measurement per evaluation
    resumable_options = frozenset({"sleep_s", "pid_dir", "chatty"})  # slower or chattier, the same latencies

    @attrs.frozen
    class Options:
        n: int = 10
        segfault_at: int = -1  # reads address 0: a real SIGSEGV
        abort_at: int = -1  # os.abort(): SIGABRT
        exit_at: int = -1  # os._exit(3)
        hang_at: int = -1  # starts a child `sleep`, writes both pids to pid_dir, then sleeps far past any limit
        raise_at: int = -1  # raises RuntimeError
        invalid_at: int = -1  # raises InvalidConfigError
        crash_verdict_at: int = -1  # returns a CRASH measurement (a kernel error the backend caught)
        pid_dir: str = ""
        sleep_s: float = 0.0  # every measurement takes this long
        chatty: bool = False  # prints to stdout, from Python and from a raw write to fd 1

    def __init__(self, options=None):
        super().__init__(options)
        self.calls = 0

    def search_space(self, workload, device):
        return SearchSpace([Knob("x", tuple(range(self.options.n)), 0)])

    def measure(self, workload, device, config):
        self.calls += 1
        x = config["x"]
        o = self.options
        time.sleep(o.sleep_s)
        if x == o.segfault_at:
            ctypes.string_at(0)
        if x == o.abort_at:
            os.abort()
        if x == o.exit_at:
            os._exit(3)
        if x == o.hang_at:
            child = subprocess.Popen(["sleep", "600"])
            with open(os.path.join(o.pid_dir, "hang.tmp"), "w") as f:
                f.write(f"{os.getpid()} {child.pid}")
            os.replace(os.path.join(o.pid_dir, "hang.tmp"), os.path.join(o.pid_dir, "hang.pids"))
            time.sleep(600)
        if x == o.raise_at:
            raise RuntimeError(f"the misbehaving kernel raised on x={x}")
        if x == o.invalid_at:
            raise InvalidConfigError(f"x={x} is refused")
        if x == o.crash_verdict_at:
            return Measurement(verdict=Verdict.CRASH, kind=self.measurement_kind, reason="illegal memory access")
        if o.chatty:
            print("chatter from print()", flush=True)
            os.write(1, b"chatter written to fd 1\\n")
        # The pid and the call count show which process measured and that the backend object was kept.
        return Measurement(verdict=Verdict.PASS, kind=self.measurement_kind, latency_us=100.0 + x,
                           reason=f"pid={os.getpid()} calls={self.calls}")


@amk.hookimpl
def register_backends(register):
    register(MisbehavingBackend)
'''


def install_misbehaving_backend(site: Path) -> None:
    write_distribution(site, "amk-misbehave", "amk_misbehave_backend", BACKEND_MODULE, entry_name="misbehave")


def worker_facts(measurement) -> dict[str, int]:
    """{"pid": ..., "calls": ...} from a PASS of the misbehaving backend."""
    return {k: int(v) for k, v in (part.split("=") for part in measurement.reason.split())}


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
