"""What a tune run must keep to survive a kill: its trials, incumbent, seed queue and random state.

The state file is JSON, rewritten after every measurement through a temporary file, fsync and an atomic
rename, so a SIGKILL leaves either the previous state or the new one, never a torn file. Records reach
the store before the state is written; on resume, candidate records of the run that the state does not
yet hold are taken back from the store (:func:`amk.tuning.loop.adopt_from_store`), so nothing is measured twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import cattrs

from amk.core.errors import TuneStateError, ValidationError
from amk.core.inputs import parse_json, strict_converter
from amk.core.records import Verdict
from amk.io.files import write_atomically
from amk.tuning.binding import RunBinding

STATE_VERSION = 1
_converter = strict_converter(forbid_extra_keys=True, detailed_validation=True)
_VERDICTS = frozenset(v.value for v in Verdict)


@attrs.define
class Trial:
    """One evaluated candidate."""

    evaluation: int  # 1-based: the first config measured is evaluation 1
    key: str  # canonical JSON of the knob config
    verdict: str
    latency_us: float | None
    kept: bool  # became the incumbent
    elapsed_s: float  # since the start of the run (summed over resumed sessions)
    # The latency it was kept at when that differs from ``latency_us``: the median of its A/B
    # re-measurements (measured backends), which is what the incumbent and the best-so-far curve show.
    kept_us: float | None = None


@attrs.define
class TuneState:
    run_id: str
    target: str  # workload key, device and backend: a state is only resumed for the same target
    seed: int
    rng_state: dict[str, Any]
    trials: list[Trial] = attrs.Factory(list)
    seed_queue: list[str] = attrs.Factory(list)  # warm-start keys not yet measured
    warm_sources: list[str] = attrs.Factory(list)
    incumbent_key: str | None = None
    incumbent_us: float | None = None
    measurements: int = 0  # every backend call, A/B re-measurements included
    elapsed_s: float = 0.0
    sessions: int = 1
    stop_reason: str | None = None
    # Configs whose result this run took from the corpus instead of evaluating them (a deterministic
    # backend, or [tune] remeasure = false), and the best of them: where the run's incumbent started.
    known: int = 0
    known_best_us: float | None = None
    known_best_source: str | None = None
    # The store, search space and measurement the trials were made with (amk.tuning.binding): a resume with
    # other ones is refused. None: a state written before amk kept it (resumed, with a warning).
    bound: RunBinding | None = None
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        """Write the state as the whole of ``path``: a new file renamed over it (FileWriteError when it cannot be
        written: a full disk, a read-only directory)."""
        write_atomically(path, json.dumps(cattrs.unstructure(self), allow_nan=False), "the tune state")

    @classmethod
    def load(cls, path: Path, target: str) -> TuneState:
        """The state at ``path``, checked (TuneStateError naming the file and the bad key otherwise)."""
        try:
            data = parse_json(path.read_bytes(), max_bytes=None, max_int=(1 << 128) - 1)  # PCG64's 128-bit state
        except FileNotFoundError:
            raise TuneStateError(f"no tune state at {path} to resume; run without --resume to start.") from None
        except OSError as exc:
            raise TuneStateError(f"the tune state {path} cannot be read ({exc.strerror}); check its permissions.") from None
        except ValidationError as exc:
            raise TuneStateError(f"the tune state {path} is unreadable ({exc}); delete it and start again.") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise TuneStateError(f"the tune state {path} is not a version {STATE_VERSION} state; delete it and start again.")
        try:
            if not isinstance(data.get("bound"), (dict, type(None))):  # cattrs would say "unknown error"
                raise TypeError(f"$.bound is {json.dumps(data['bound'])[:40]}, not a JSON object")
            state = _converter.structure(data, cls)
            state._check()
        except (cattrs.errors.CattrsError, ValueError, TypeError, KeyError) as exc:
            details = "; ".join(cattrs.transform_error(exc, path="$")) if isinstance(
                exc, cattrs.errors.BaseValidationError) else str(exc)
            raise TuneStateError(f"the tune state {path} is malformed ({details}); delete it and start again.") from None
        if state.target != target:
            raise TuneStateError(
                f"the tune state {path} belongs to another target ({state.target}); pass --state for this one."
            )
        return state

    def _check(self) -> None:
        """ValueError naming the first value a state amk wrote could not hold."""
        for i, t in enumerate(self.trials):
            where = f"$.trials[{i}]"
            if t.evaluation != i + 1:
                raise ValueError(f"{where}.evaluation is {t.evaluation}, not {i + 1}")
            if t.verdict not in _VERDICTS:
                raise ValueError(f"{where}.verdict {t.verdict!r} is not one of {sorted(_VERDICTS)}")
            if t.latency_us is not None and not t.latency_us > 0:
                raise ValueError(f"{where}.latency_us {t.latency_us!r} is not a positive latency")
            if not t.elapsed_s >= 0:
                raise ValueError(f"{where}.elapsed_s {t.elapsed_s!r} is negative")
        if (self.incumbent_key is None) != (self.incumbent_us is None):
            raise ValueError("$.incumbent_key and $.incumbent_us must be both set or both null")
        if self.incumbent_us is not None and not self.incumbent_us > 0:
            raise ValueError(f"$.incumbent_us {self.incumbent_us!r} is not a positive latency")
        for name in ("measurements", "sessions", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"$.{name} {getattr(self, name)!r} is negative")
        if not (math.isfinite(self.elapsed_s) and self.elapsed_s >= 0):
            raise ValueError(f"$.elapsed_s {self.elapsed_s!r} is not a duration")
        if self.bound is not None:
            self.bound.check()
        import numpy as np

        try:  # the random state a generator can take back
            np.random.default_rng().bit_generator.state = self.rng_state
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise ValueError(f"$.rng_state is not a random state numpy can restore ({exc})") from None


_HELD: dict[str, tuple[int, int]] = {}  # lock path -> (its descriptor, how many holders in this process)


@contextlib.contextmanager
def run_lock(state_path: Path) -> Iterator[None]:
    """Hold ``<state file>.lock`` (an exclusive ``flock``) while a run uses ``state_path``.

    Two runs of one target at once would share one state file, and neither could be resumed; the second is
    refused with TuneStateError. Re-entrant within a process (the CLI takes it before preparing the target,
    the loop again). The lock is released by the kernel when the process dies, so a killed run never leaves
    it held.
    """
    lock_path = state_path.with_name(state_path.name + ".lock")
    key = str(lock_path.resolve())
    if key in _HELD:
        f, n = _HELD[key]
        _HELD[key] = (f, n + 1)
    else:
        _HELD[key] = (_acquire(lock_path, state_path), 1)
    try:
        yield
    finally:
        f, n = _HELD[key]
        if n > 1:
            _HELD[key] = (f, n - 1)
        else:
            del _HELD[key]
            with contextlib.suppress(OSError):
                os.unlink(lock_path)  # while still held: a run that opened it meanwhile finds it gone, and retries
            os.close(f)


def _acquire(lock_path: Path, state_path: Path) -> int:
    """The lock file's descriptor, open and exclusively locked (TuneStateError when another run holds it)."""
    while True:
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise TuneStateError(f"cannot create the lock {lock_path} of the tune state: {exc.strerror}; check the "
                                 "directory's permissions (or pass --state elsewhere).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise TuneStateError(f"another amk tune run of this target is using the state file {state_path}{who}; "
                                 "wait for it to finish, or give this run its own state file with --state.") from None
        try:
            current = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if not current:  # released and removed by its holder while we opened it: take the new one
            os.close(fd)
            continue
        with contextlib.suppress(OSError):  # who holds it, for the message of a refused run (a full disk: none)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd
