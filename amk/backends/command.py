"""The ``command`` backend: tunes any program that takes its knobs as flags or environment variables and
prints its time.

What it needs (its ``[backend]`` options, or ``--backend-option KEY=VALUE``):

- ``space``: a search-space file, TOML or JSON, with Kernel Tuner's names: ``tune_params`` (knob -> list
  of choices), optionally ``restrictions`` (expressions over the knobs, evaluated safely:
  :mod:`amk.core.restrictions`) and ``defaults`` (knob -> default; else the first choice)::

      restrictions = ["bx * by <= 256"]
      [tune_params]
      bx = [8, 16, 32, 64]
      by = [1, 2, 4]

- ``command``: the program, a template filled with the config's knobs and the workload's shape entries
  (``./bench --bx {bx} --by {by} --n {n}``); split like a shell line (shlex) but run without a shell, so a
  knob value is one argument, never shell code. ``env``: environment variables, templates too
  (``{"BX": "{bx}"}``). ``build``: an optional template run before the first measurement of each config
  (``gcc -O2 -DBX={bx} bench.c -o bench_{bx}``); ``cwd``: where both run.
- The latency, read from the program's standard output: by default the last line that is a JSON object
  with the key ``time_key`` (``"time"``, a number or a list of repeats); or, with ``pattern``, the last
  match of a regular expression whose group ``time`` (or group 1) is the number and whose optional group
  ``unit`` its unit. ``unit`` (``ns``, ``us``, ``ms``, ``s``; default ``ms``, Kernel Tuner's unit of
  ``time``) is the number's unit when the output does not say.
- Correctness: exit code 0 and, with ``correct_key``, that JSON key true. ``repeats`` timed runs (the
  latency is their median, the spread their interquartile range) after ``warmup`` untimed ones, each
  under ``timeout_s`` seconds.

Verdicts of one measurement (the first run that is not a pass decides): a build that exits non-zero is
FAIL (Kernel Tuner's CompilationFailedConfig); a run that exits non-zero, or says ``correct_key`` false,
FAIL; a run killed by a signal (a segfault, an abort) CRASH; a run or build past ``timeout_s`` TIMEOUT;
output without a readable, positive latency CRASH. Each run is a process group of its own, killed whole
on its timeout, and (Linux) killed when the measuring process dies; ``isolation = "process"`` by default,
so the measuring process is itself a worker the loop can kill (``[tune] timeout_s`` bounds a whole
measurement: build, warm-up and repeats).

The device: ``--device`` names it, or ``--device local`` (:meth:`CommandBackend.local_device`): the GPU
``nvidia-smi`` lists first (the first of ``CUDA_VISIBLE_DEVICES``), else this machine's CPU.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import shlex
import shutil
import signal
import string
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np

from amk.core.backend import Backend
from amk.core.columns import config_key
from amk.core.devices import Device, resolve_device
from amk.core.errors import BackendError, ValidationError
from amk.core.records import LATENCY_UNITS, Measurement, MeasurementKind, Verdict, latency_to_us
from amk.core.space import SearchSpace
from amk.core.workload import Workload
from amk.io.processes import describe_exit, kill_group

SPACE_KEYS = ("tune_params", "restrictions", "defaults")
KILL_WAIT_S = 5.0  # after killing a program's group, how long its pipes may take to close


# -- the search-space file ----------------------------------------------------------------------------
def read_space_file(path: str | os.PathLike) -> SearchSpace:
    """The search space a TOML or JSON file holds (``tune_params``, ``restrictions``, ``defaults``).

    Raises BackendError naming the file and what is wrong in it.
    """
    path = Path(path)
    where = f"the search-space file {str(path)!r}"
    try:
        text = path.read_text()
    except OSError as exc:
        raise BackendError(f"{where} cannot be read ({exc.strerror}); check the [backend] space option.") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BackendError(f"{where} is not valid JSON ({exc}); fix the file.") from None
    elif path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BackendError(f"{where} is not valid TOML ({exc}); fix the file.") from None
    else:
        raise BackendError(f"{where} must end in .toml or .json, so amk knows how to read it.")
    if not isinstance(data, dict):
        raise BackendError(f"{where} must hold an object with {list(SPACE_KEYS)}, got {type(data).__name__}.")
    unknown = sorted(set(data) - set(SPACE_KEYS))
    if unknown:
        raise BackendError(f"{where} has unknown key(s) {unknown}; the keys are {list(SPACE_KEYS)} (in TOML, "
                           "top-level keys such as restrictions come before the [tune_params] table).")
    if "tune_params" not in data:
        raise BackendError(f"{where} has no tune_params (knob -> list of choices); add them.")
    restrictions = data.get("restrictions", [])
    if not isinstance(restrictions, list) or not all(isinstance(r, str) for r in restrictions):
        raise BackendError(f"{where}: restrictions must be a list of expression strings, got {restrictions!r}.")
    try:
        return SearchSpace.from_tune_params(data["tune_params"], restrictions, data.get("defaults"))
    except ValidationError as exc:
        raise BackendError(f"{where}: {exc}") from None


# -- templates ----------------------------------------------------------------------------------------
def template_fields(template: str) -> list[str]:
    """The names a template fills (``{bx}``); BackendError for a field that is not a plain name."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise BackendError(f"the template {template!r} is malformed ({exc}); write fields as {{knob}} and a "
                           "literal brace as {{ or }}.") from None
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise BackendError(f"the template {template!r} has the field {{{field}}}; a field must be a knob or "
                               "shape name (no indexing or attributes).")
        fields.append(field)
    return fields


# -- running the program ------------------------------------------------------------------------------
@attrs.frozen
class ProgramRun:
    """One run of a program: its exit (None: killed on its timeout), its output, and how it ended."""

    returncode: int | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def last_words(self) -> str:
        """The last non-empty line of stderr (else of stdout), for a reason."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1][:200]
        return ""


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function that has Linux kill the child when the process that started it dies (resolved
    here, before the fork, so the child only makes one system call)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


_PREEXEC = _die_with_parent()


def run_program(argv: list[str], *, env: Mapping[str, str], cwd: str | None, timeout_s: float | None) -> ProgramRun:
    """Run ``argv`` in a process group of its own; past ``timeout_s`` the whole group is killed.

    Raises BackendError when the program cannot be started at all (not found, not executable).
    """
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env), cwd=cwd or None, start_new_session=True,
                                preexec_fn=_PREEXEC)  # noqa: PLW1509 (one prctl call, resolved before the fork)
    except OSError as exc:
        raise BackendError(f"cannot start {argv[0]!r} ({exc.strerror or exc}); check the command and the "
                           "cwd option.") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        try:
            stdout, stderr = proc.communicate(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:  # a process that left the group holds the pipes open
            stdout, stderr = b"", b""
            proc.kill()
            proc.wait()
        return ProgramRun(None, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
    except BaseException:
        kill_group(proc.pid)
        proc.wait()
        raise
    return ProgramRun(proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


# -- reading the latency ------------------------------------------------------------------------------
class OutputError(Exception):
    """The program's output has no readable latency (or correctness field); the message says why."""


def _positive_numbers(value: Any, what: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise OutputError(f"{what} is {value!r}, not a number or a list of numbers")
    bad = [v for v in values if not (math.isfinite(v) and v > 0)]
    if bad:
        raise OutputError(f"{what} is {value!r}: a latency must be a positive, finite number")
    return [float(v) for v in values]


@attrs.frozen
class ReadOutput:
    """What a run printed: its latencies in us, and its own correctness verdict (None: it gave none)."""

    latencies_us: list[float]
    correct: bool | None


def read_json_output(stdout: str, time_key: str, unit: str, correct_key: str = "") -> ReadOutput:
    """The last stdout line that is a JSON object holding ``time_key``; OutputError when there is none."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict) or time_key not in obj:
            continue
        values = _positive_numbers(obj[time_key], f"the output's {time_key!r}")
        correct = None
        if correct_key:
            if correct_key not in obj:
                raise OutputError(f"the output line {line[:200]!r} has no {correct_key!r} (correct_key)")
            correct = bool(obj[correct_key])
        return ReadOutput([latency_to_us(v, unit) for v in values], correct)
    raise OutputError(f"no line of the output is a JSON object with {time_key!r} (time_key)")


def read_regex_output(stdout: str, pattern: re.Pattern[str], unit: str) -> ReadOutput:
    """The last match of ``pattern`` in stdout: group ``time`` (or 1) the number, group ``unit`` its unit."""
    match = None
    for match in pattern.finditer(stdout):
        pass
    if match is None:
        raise OutputError(f"the pattern {pattern.pattern!r} matches nothing in the output")
    names = pattern.groupindex
    text = match.group("time") if "time" in names else match.group(1)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise OutputError(f"the pattern's time group matched {text!r}, not a number") from None
    found_unit = match.group("unit") if "unit" in names and match.group("unit") else unit
    try:
        values = _positive_numbers(value, "the matched time")
        return ReadOutput([latency_to_us(values[0], found_unit)], None)
    except ValidationError as exc:
        raise OutputError(f"the matched unit: {exc}") from None


# -- the device -----------------------------------------------------------------------------------------
def detect_device() -> Device:
    """The GPU ``nvidia-smi`` lists first (the first of ``CUDA_VISIBLE_DEVICES`` when set), else this
    machine's CPU (``cpu-<model>``, as the cpu backend names it)."""
    smi = shutil.which("nvidia-smi")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    wanted = visible.split(",")[0].strip() if visible is not None else None
    if smi and wanted not in ("", "-1"):
        try:
            out = subprocess.run([smi, "--query-gpu=index,uuid,name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        gpus = [[part.strip() for part in line.split(",", 2)] for line in out.splitlines() if line.count(",") >= 2]
        for index, uuid, name in gpus:
            if wanted is None or wanted in (index, uuid) or (wanted.startswith("GPU-") and uuid.startswith(wanted)):
                return resolve_device(name)
    from amk.backends.cpu import local_cpu_device

    return local_cpu_device()


# -- the backend ----------------------------------------------------------------------------------------
def _check_unit(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value.strip().lower() not in LATENCY_UNITS:
        raise ValueError(f"{attribute.name}={value!r} must be one of ns, us, ms, s")


def _at_least(minimum: float):
    def check(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name}={value!r} must be >= {minimum:g}")

    return check


class CommandBackend(Backend):
    """Measures a config by running a program built and started from templates filled with its knobs."""

    name: ClassVar[str] = "command"
    version: ClassVar[str] = "1"
    measurement_kind: ClassVar[MeasurementKind] = MeasurementKind.MEASURED
    isolation: ClassVar[str] = "process"  # a hung or crashing program costs one record, not the run
    # Options a resumed tune run may change (amk.tuning.binding): they bound a run, not the latency it reports.
    resumable_options: ClassVar[frozenset[str]] = frozenset({"timeout_s"})

    @attrs.frozen
    class Options:
        space: str = ""  # the search-space file (.toml or .json): tune_params, restrictions, defaults
        command: str = ""  # the program to time, a template: "./bench --bx {bx} --by {by}"
        env: dict[str, str] = attrs.field(factory=dict)  # environment variables, templates too: {"BX": "{bx}"}
        build: str = ""  # a template run before a config's first measurement: "gcc -DBX={bx} b.c -o b_{bx}"
        cwd: str = ""  # where the build and the program run (default: the current directory)
        time_key: str = "time"  # the JSON output's key of the latency (a number or a list of repeats)
        pattern: str = ""  # or a regex over stdout: group 'time' (or 1) the number, optional group 'unit'
        unit: str = attrs.field(default="ms", validator=_check_unit)  # ns | us | ms | s
        correct_key: str = ""  # a JSON key that is false for a wrong answer (FAIL)
        repeats: int = attrs.field(default=1, validator=_at_least(1))  # timed runs; latency: their median
        warmup: int = attrs.field(default=0, validator=_at_least(0))  # untimed runs first
        timeout_s: float = attrs.field(default=60.0, validator=_at_least(0))  # per run and build; 0: none

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self._space: SearchSpace | None = None
        self._built: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        if self.options.pattern:
            try:
                self._pattern = re.compile(self.options.pattern)
            except re.error as exc:
                raise BackendError(f"[backend] command pattern={self.options.pattern!r} is not a regular "
                                   f"expression ({exc}); fix it.") from None
            if "time" not in self._pattern.groupindex and self._pattern.groups < 1:
                raise BackendError(f"[backend] command pattern={self.options.pattern!r} has no group for the "
                                   "number; write it as (?P<time>[0-9.eE+-]+) or with one (group).")

    def availability(self) -> tuple[bool, str]:
        return True, "runs the program its [backend] command option names (options: space, command)"

    def local_device(self) -> Device:
        """The GPU nvidia-smi lists first, else this machine's CPU (:func:`detect_device`)."""
        return detect_device()

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        space = self._read_space()
        self._check_templates(space, workload)
        return space

    def _read_space(self) -> SearchSpace:
        if self._space is None:
            if not self.options.space:
                raise BackendError("the command backend needs a search-space file: set [backend] space = "
                                   "\"space.toml\" (or --backend-option space=space.toml).")
            self._space = read_space_file(self.options.space)
        return self._space

    def _check_templates(self, space: SearchSpace, workload: Workload) -> None:
        if not self.options.command.strip():
            raise BackendError("the command backend needs the program to run: set [backend] command = "
                               "\"./bench --bx {bx}\" (or --backend-option 'command=./bench --bx {bx}').")
        clash = sorted(set(space.knob_names) & set(workload.shape))
        if clash:
            raise BackendError(f"{clash} are both knobs and shape entries of {workload.name!r}, so a template "
                               "cannot tell them apart; rename one.")
        names = set(space.knob_names) | set(workload.shape)
        for label, template in self._templates():
            unknown = sorted(set(template_fields(template)) - names)
            if unknown:
                raise BackendError(f"the {label} template {template!r} names {unknown}, which are neither knobs "
                                   f"{space.knob_names} nor shape entries {sorted(workload.shape)}.")
            if label in ("command", "build"):
                self._argv(template, None)  # one error before the run, not a CRASH record per config
        if self.options.cwd and not os.path.isdir(self.options.cwd):
            raise BackendError(f"the command backend's cwd {self.options.cwd!r} is no directory here; fix the cwd "
                               "option (every config would fail to start).")

    def _templates(self) -> list[tuple[str, str]]:
        out = [("command", self.options.command), ("build", self.options.build)]
        out += [(f"env {key}", value) for key, value in self.options.env.items()]
        return [(label, text) for label, text in out if text]

    def _argv(self, template: str, values: Mapping[str, Any] | None) -> list[str]:
        """``template`` split as a shell would (no shell runs), each word formatted with ``values`` (None: split
        only). BackendError for a template that cannot be split (an unclosed quote)."""
        try:
            words = shlex.split(template)
        except ValueError as exc:
            raise BackendError(f"the template {template!r} cannot be split into arguments ({exc}); fix its "
                               "quotes.") from None
        return words if values is None else [word.format(**values) for word in words]

    def _environment(self, values: Mapping[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update({key: value.format(**values) for key, value in self.options.env.items()})
        return env

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        space = self.search_space(workload, device)
        space.check(config)
        values = {**workload.shape, **config}
        env = self._environment(values)
        cwd = self.options.cwd or None
        timeout = self.options.timeout_s or None
        key = config_key(dict(config))
        if self.options.build and key not in self._built:
            run = run_program(self._argv(self.options.build, values), env=env, cwd=cwd, timeout_s=timeout)
            failed = self._judge(run, "the build")
            if failed is not None:
                return failed
            with self._lock:
                self._built.add(key)
        argv = self._argv(self.options.command, values)
        latencies: list[float] = []
        for i in range(self.options.warmup + self.options.repeats):
            run = run_program(argv, env=env, cwd=cwd, timeout_s=timeout)
            failed = self._judge(run, "the program")
            if failed is not None:
                return failed
            try:
                read = (read_regex_output(run.stdout, self._pattern, self.options.unit) if self._pattern else
                        read_json_output(run.stdout, self.options.time_key, self.options.unit,
                                         self.options.correct_key))
            except OutputError as exc:
                tail = run.last_words()
                return self._result(Verdict.CRASH, f"{exc}{'; its last output: ' + tail if tail else ''}")
            if read.correct is False:
                return self._result(Verdict.FAIL, f"the program reported {self.options.correct_key}=false "
                                                  "(a wrong answer)")
            if i >= self.options.warmup:
                latencies += read.latencies_us
        q1, q3 = np.percentile(latencies, [25, 75])
        return Measurement(verdict=Verdict.PASS, kind=self.measurement_kind, latency_us=float(np.median(latencies)),
                           spread_us=float(q3 - q1), samples=len(latencies))

    def _judge(self, run: ProgramRun, what: str) -> Measurement | None:
        """The failure verdict of a run, or None when it exited 0."""
        tail = run.last_words()
        said = f"; its last output: {tail}" if tail else ""
        if run.timed_out:
            return self._result(Verdict.TIMEOUT, f"{what} ran past timeout_s={self.options.timeout_s:g} s; its "
                                                 f"process group was killed{said}")
        if run.returncode < 0:
            return self._result(Verdict.CRASH, f"{what} was {describe_exit(run.returncode)}{said}")
        if run.returncode != 0:
            wrong = " (a wrong answer or a failed run)" if what == "the program" else ""
            return self._result(Verdict.FAIL, f"{what} {describe_exit(run.returncode)}{wrong}{said}")
        return None

    def _result(self, verdict: Verdict, reason: str) -> Measurement:
        return Measurement(verdict=verdict, kind=self.measurement_kind, reason=reason[:500])
