"""Measuring in a worker process, so a segfault, abort or hang in a candidate costs one record, not the run.

``[tune] isolation`` picks where ``backend.measure`` runs:

- ``thread``: :func:`amk.tuning.gates.measure_guarded`, in this process. Cheap; but a hung measurement
  is only abandoned, and a segfault (or a poisoned CUDA context) takes the whole run down.
- ``process``: a :class:`WorkerProcess`, one persistent child interpreter (a fresh ``python``, never a
  fork: no torch or CUDA state is inherited) that rebuilds the backend from its registered name and its
  Options as plain data, and keeps it (a compiled extension, prepared weights) across measurements. A
  timeout kills the worker's process group; a death (signal, exit) is a CRASH naming the signal or exit
  code; after either, or after any CRASH verdict (the process state is then unknown: a CUDA error is
  sticky), the next measurement starts a fresh worker.
- ``auto`` (the default): what the backend's ``isolation`` class attribute asks for: ``process`` for the
  compiled backends (cpu, cuda), ``thread`` for those that only look up or predict (replay, roofline).

The protocol is one length-prefixed JSON frame per message over the worker's stdin and a duplicate of its
stdout (the worker's own fd 1 points at its stderr, so nothing a backend prints can corrupt it); records'
pieces cross in their usual dict forms (:data:`amk.core.records.converter`). The worker exits when its
stdin closes and, while it measures, when its parent dies (Linux parent-death signal, and a thread that
watches the parent's pid), so a killed ``amk tune`` leaves no worker behind.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, Protocol

import attrs

from amk.core.backend import Backend
from amk.core.config import options_converter, structure_options
from amk.core.devices import Device
from amk.core.errors import BackendError, InvalidConfigError, PluginError
from amk.core.plugins import Registry, build_registry, get_registry
from amk.core.records import Measurement, MeasurementKind, Verdict, converter
from amk.core.workload import Workload
from amk.io.processes import describe_exit
from amk.io.processes import kill_group as _kill_group
from amk.tuning.gates import checked_measurement, error_measurement, measure_guarded

log = logging.getLogger("amk.isolation")

ISOLATION_MODES = ("auto", "process", "thread")
STARTUP_TIMEOUT_S = 300.0  # a fresh interpreter importing the backend's modules on a loaded machine
CLOSE_TIMEOUT_S = 5.0  # a worker told to stop (stdin closed) that has not exited by then is killed

_HEADER = struct.Struct(">I")
_MAX_FRAME = 256 << 20
_BOOTSTRAP = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
              "from amk.tuning.isolation import worker_main; worker_main(sys.argv[2] == '1')")


# -- what crosses the pipe ------------------------------------------------------------------------------
@attrs.frozen
class BackendSpec:
    """What a worker rebuilds a backend from: the registered name, the Options as plain data, the class the
    registry must give for that name, and whether the parent's registry loaded entry-point plugins."""

    name: str
    options: dict[str, Any]
    cls: str  # "module:qualname"
    entry_points: bool = True

    @classmethod
    def of(cls, backend: Backend, registry: Registry) -> BackendSpec:
        """The spec of a live backend created through ``registry``; refuses one the registry cannot rebuild."""
        hint = 'register it as a plugin (docs/plugins.md) or set [tune] isolation = "thread"'
        try:
            impl = registry.get(Backend, backend.name)
        except PluginError as exc:
            raise BackendError(f"the backend {backend.name!r} cannot be rebuilt in a worker process ({exc}); "
                               f"{hint}.") from None
        if impl.cls is not type(backend):
            raise BackendError(
                f"the backend {backend.name!r} is a {_class_path(type(backend))}, not the registered "
                f"{_class_path(impl.cls)}, so a worker process cannot rebuild it; {hint}.")
        return cls(backend.name, options_converter.unstructure(backend.options), _class_path(impl.cls),
                   registry.include_entry_points)

    def create(self) -> Backend:
        """The backend, built through a registry built as the parent's was (in the worker)."""
        registry = build_registry(include_entry_points=self.entry_points)
        impl = registry.get(Backend, self.name)
        if _class_path(impl.cls) != self.cls:
            raise BackendError(f"the worker's registry gives {_class_path(impl.cls)} for the backend {self.name!r}, "
                               f"not the parent's {self.cls}; check both run the same amk and plugins.")
        options = structure_options(impl.cls.Options, self.options, where="the measurement worker",
                                    label=f"[backend] {self.name!r}")
        return registry.create(Backend, self.name, options)


@attrs.frozen
class StartWorker:
    backend: BackendSpec


@attrs.frozen
class WorkerReady:
    pid: int


@attrs.frozen
class WorkerFailed:
    error: str


@attrs.frozen
class MeasureRequest:
    workload: Workload
    device: Device
    config: dict[str, Any]


@attrs.frozen
class MeasureReply:
    """A measurement, or the exception ``backend.measure`` raised (its type name and text)."""

    measurement: Measurement | None = None
    error_type: str | None = None
    error: str | None = None
    invalid_config: bool = False


_MESSAGES: dict[str, type] = {c.__name__: c for c in (StartWorker, WorkerReady, WorkerFailed, MeasureRequest,
                                                      MeasureReply)}


def encode_message(message: Any) -> bytes:
    """One frame: a 4-byte big-endian length, then the message as JSON with its type under ``op``."""
    body = {"op": type(message).__name__, **converter.unstructure(message)}
    data = json.dumps(body, allow_nan=False, separators=(",", ":"), default=_plain).encode()
    return _HEADER.pack(len(data)) + data


def _plain(value: Any) -> Any:
    """A numpy scalar (a knob value read from an array) as the Python number it holds."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} cannot cross to the measurement worker as JSON")


def decode_message(data: bytes) -> Any:
    body = json.loads(data)
    return converter.structure(body, _MESSAGES[body.pop("op")])


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


# -- the worker ---------------------------------------------------------------------------------------
def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_message(stream: IO[bytes]) -> Any:
    """The next message, or None when the parent closed the pipe."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    return None if data is None else decode_message(data)


def _send(stream: IO[bytes], message: Any) -> None:
    stream.write(encode_message(message))
    stream.flush()


def _exit_with_parent(parent_death_signal: bool) -> None:
    """Die with the parent even while a measurement holds the main thread."""
    parent = os.getppid()
    if parent_death_signal and sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:  # also covers a measurement that holds the parent-death signal off (none on macOS)
        while os.getppid() == parent:
            time.sleep(0.2)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # the worker and whatever its backend started

    threading.Thread(target=watch, name="amk-parent-watch", daemon=True).start()


def _measure(backend: Backend, request: MeasureRequest) -> MeasureReply:
    try:
        measurement = backend.measure(request.workload, request.device, request.config)
    except BaseException as exc:  # the backend's failure is a result, whatever it is
        return MeasureReply(error_type=type(exc).__name__, error=str(exc),
                            invalid_config=isinstance(exc, InvalidConfigError))
    return MeasureReply(measurement=checked_measurement(backend.measurement_kind, measurement))


def worker_main(parent_death_signal: bool = False) -> None:
    """The worker's loop: build the backend, then answer measure requests until stdin closes."""
    import faulthandler

    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints and C-level writes of the backend go to stderr, never into the protocol
    protocol_in = os.fdopen(0, "rb", buffering=0)
    faulthandler.enable()  # a segfault prints the Python stack to stderr before the process dies
    _exit_with_parent(parent_death_signal)
    start = _read_message(protocol_in)
    if not isinstance(start, StartWorker):
        return
    try:
        backend = start.backend.create()
    except BaseException as exc:
        _send(protocol_out, WorkerFailed(f"{type(exc).__name__}: {exc}"))
        return
    _send(protocol_out, WorkerReady(os.getpid()))
    while (request := _read_message(protocol_in)) is not None:
        reply = _measure(backend, request)
        try:
            frame = encode_message(reply)
        except (TypeError, ValueError) as exc:  # e.g. a value JSON cannot carry
            frame = encode_message(MeasureReply(error_type=type(exc).__name__,
                                                error=f"the measurement cannot be sent back: {exc}"))
        protocol_out.write(frame)
        protocol_out.flush()


# -- the parent's side ---------------------------------------------------------------------------------
class _WorkerTimeout(Exception):
    pass


class _WorkerGone(Exception):
    pass


class _FrameReader:
    """Frames from a pipe, each awaited until a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def read(self, deadline: float | None) -> Any:
        while True:
            if len(self.buffer) >= _HEADER.size:
                size = _HEADER.unpack_from(self.buffer)[0]
                if size > _MAX_FRAME:
                    raise _WorkerGone(f"a frame of {size} bytes")
                if len(self.buffer) >= _HEADER.size + size:
                    data = bytes(self.buffer[_HEADER.size:_HEADER.size + size])
                    del self.buffer[:_HEADER.size + size]
                    return decode_message(data)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _WorkerTimeout
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                raise _WorkerTimeout
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise _WorkerGone("end of output")
            self.buffer += chunk


def _forward_stderr(stream: IO[bytes], tail: collections.deque, sink: IO[str]) -> None:
    """Copy the worker's stderr to ours, keeping its last lines for a death's reason."""
    for line in iter(stream.readline, b""):
        text = line.decode(errors="replace").rstrip("\n")
        tail.append(text)
        try:
            sink.write(text + "\n")
            sink.flush()
        except (OSError, ValueError):  # our stderr is gone or closed; keep draining the pipe
            pass
    stream.close()


def _exited(pid: int, timeout_s: float) -> bool:
    """Whether the child ``pid`` exited within ``timeout_s``, without reaping it: while unreaped, its
    process group id cannot be reused, so killing the group afterwards kills no stranger."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


class WorkerProcess:
    """A persistent measurement worker for one backend; a fresh one replaces it after a death, a timeout
    or a CRASH verdict. ``measure`` never raises for the backend; a worker that cannot even start (the
    backend cannot be built there) is a BackendError, as it would fail every candidate alike."""

    mode = "process"

    def __init__(self, spec: BackendSpec, kind: MeasurementKind, *, startup_timeout_s: float = STARTUP_TIMEOUT_S,
                 stderr: IO[str] | None = None) -> None:
        self.spec = spec
        self.kind = kind
        self.startup_timeout_s = startup_timeout_s
        self.stderr = stderr
        self.starts = 0  # workers started so far
        self._proc: subprocess.Popen | None = None
        self._reader: _FrameReader | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._forwarder: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The live worker's pid (None before the first measurement and after a death or timeout)."""
        return self._proc.pid if self._proc is not None else None

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any],
                timeout_s: float | None) -> Measurement:
        """``backend.measure`` in the worker under ``timeout_s`` seconds (None: no limit)."""
        if self._proc is not None and _exited(self._proc.pid, 0):
            log.warning("the measurement worker %d %s between measurements; starting a new one",
                        self._proc.pid, self._stop(kill=True))
        if self._proc is None:
            self._start()
        proc = self._proc
        request = encode_message(MeasureRequest(workload, device, dict(config)))
        self._tail.clear()
        try:
            proc.stdin.write(request)
            proc.stdin.flush()
            reply = self._reader.read(None if timeout_s is None else time.monotonic() + timeout_s)
        except _WorkerTimeout:
            self._stop(kill=True)
            return Measurement(verdict=Verdict.TIMEOUT, kind=self.kind,
                               reason=f"no result within {timeout_s:g} s; the measurement worker process "
                                      f"{proc.pid} was killed")
        except (_WorkerGone, BrokenPipeError):
            how = self._stop(kill=False, timeout_s=2.0)
            return Measurement(verdict=Verdict.CRASH, kind=self.kind,
                               reason=self._with_tail(f"the measurement worker process {proc.pid} {how} "
                                                      "while measuring"))
        except BaseException:  # Ctrl-C or an error of ours while the worker measures: it must not run on
            self._stop(kill=True)
            raise
        if reply.measurement is None:
            measurement = error_measurement(self.kind, reply.error_type or "Exception", reply.error or "",
                                            invalid_config=reply.invalid_config)
        else:
            measurement = reply.measurement
        if measurement.verdict is Verdict.CRASH:
            self._stop(kill=True)  # whatever failed may have left the process unusable (a sticky CUDA error)
        return measurement

    def close(self) -> None:
        """Stop the worker: its stdin closes and it exits (killed if it does not within a few seconds)."""
        if self._proc is not None:
            self._stop(kill=False, timeout_s=CLOSE_TIMEOUT_S)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a measurer dropped without close(): its worker must not linger
        try:
            if self._proc is not None:
                _kill_group(self._proc.pid)
        except Exception:  # noqa: S110 (at interpreter exit the module's globals may be gone)
            pass

    # -- lifecycle -----------------------------------------------------------------------------------
    def _start(self) -> None:
        on_main_thread = threading.current_thread() is threading.main_thread()
        # The parent-death signal fires when the creating *thread* ends: only safe from the main thread.
        args = [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), "1" if on_main_thread else "0"]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        self.starts += 1
        self._proc, self._reader = proc, _FrameReader(proc.stdout.fileno())
        self._tail.clear()
        self._forwarder = threading.Thread(target=_forward_stderr, args=(proc.stderr, self._tail,
                                                                         self.stderr or sys.stderr),
                                           name=f"amk-worker-stderr-{proc.pid}", daemon=True)
        self._forwarder.start()
        problem = None
        try:
            proc.stdin.write(encode_message(StartWorker(self.spec)))
            proc.stdin.flush()
            reply = self._reader.read(time.monotonic() + self.startup_timeout_s)
            if isinstance(reply, WorkerFailed):
                problem = f"could not build the backend there: {reply.error}"
        except _WorkerTimeout:
            problem = f"did not start within {self.startup_timeout_s:g} s"
        except (_WorkerGone, BrokenPipeError):
            problem = self._with_tail(self._stop(kill=False, timeout_s=2.0))
        if problem is not None:
            self._stop(kill=True)
            raise BackendError(f"the measurement worker process of the {self.spec.name!r} backend {problem}; "
                               'fix that, or set [tune] isolation = "thread" to measure in this process.')

    def _stop(self, *, kill: bool, timeout_s: float = 0.0) -> str:
        """End the worker (killed, or asked to exit and killed after ``timeout_s``) and its process group;
        returns how it ended."""
        proc, self._proc = self._proc, None
        if proc is None:
            return "was not running"
        if not kill:
            try:
                proc.stdin.close()
            except OSError:
                pass
            _exited(proc.pid, timeout_s)
        _kill_group(proc.pid)  # the worker if it still runs, and whatever its backend left in its group
        returncode = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self._forwarder is not None:
            self._forwarder.join(2.0)
        return describe_exit(returncode)

    def _with_tail(self, text: str) -> str:
        """``text`` and the worker's last words on stderr (a faulthandler report, an abort message)."""
        lines = [line for line in self._tail if line.strip()]
        fatal = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), None)
        if fatal is not None:  # what the process said, faulthandler's verdict, and the innermost frame
            current = next((i for i in range(fatal, len(lines)) if lines[i].startswith("Current thread")), None)
            frame = lines[current + 1:current + 2] if current is not None else []
            lines = lines[max(0, fatal - 2):fatal + 1] + frame
        else:
            lines = lines[-2:]
        if lines:
            text += "; its last output: " + " | ".join(line.strip() for line in lines)
        return text[:500]


# -- choosing the mode ---------------------------------------------------------------------------------
class Measurer(Protocol):
    mode: str

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any],
                timeout_s: float | None) -> Measurement: ...

    def close(self) -> None: ...


class ThreadMeasurer:
    """``measure_guarded`` in this process: no isolation, no per-measurement cost."""

    mode = "thread"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any],
                timeout_s: float | None) -> Measurement:
        return measure_guarded(self.backend, workload, device, config, timeout_s)

    def close(self) -> None:
        pass


def resolve_isolation(isolation: str, backend: Backend) -> str:
    """``process`` or ``thread``: the setting, or for ``auto`` what the backend's class asks for."""
    if isolation == "auto":
        return "process" if backend.isolation == "process" else "thread"
    return isolation


def make_measurer(backend: Backend, isolation: str = "auto", registry: Any = None) -> Measurer:
    """The measurer ``isolation`` selects for ``backend`` (created through ``registry``, the process-wide
    one by default)."""
    if resolve_isolation(isolation, backend) == "thread":
        return ThreadMeasurer(backend)
    if registry is None:
        registry = get_registry()
    return WorkerProcess(BackendSpec.of(backend, registry), backend.measurement_kind)
