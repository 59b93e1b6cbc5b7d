"""What a tune run must keep to survive a kill: its trials, incumbent, seed queue and random state.

The state file is JSON, rewritten after every measurement through a temporary file, fsync and an atomic
rename, so a SIGKILL leaves either the previous state or the new one, never a torn file. Records reach
the store before the state is written; on resume, candidate records of the run that the state does not
yet hold are taken back from the store (:func:`amk.tuning.loop.adopt_from_store`), so nothing is measured twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs
import cattrs

from amk.core.errors import TuneStateError

STATE_VERSION = 1



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
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(cattrs.unstructure(self), allow_nan=False)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, target: str) -> TuneState:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise TuneStateError(f"no tune state at {path} to resume; run without --resume to start.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TuneStateError(f"the tune state {path} is unreadable ({exc}); delete it and start again.") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise TuneStateError(f"the tune state {path} is not a version {STATE_VERSION} state; delete it and start again.")
        try:
            state = cattrs.structure(data, cls)
        except (cattrs.errors.CattrsError, ValueError, TypeError, KeyError) as exc:
            raise TuneStateError(f"the tune state {path} is malformed ({exc}); delete it and start again.") from None
        if state.target != target:
            raise TuneStateError(
                f"the tune state {path} belongs to another target ({state.target}); pass --state for this one."
            )
        return state
