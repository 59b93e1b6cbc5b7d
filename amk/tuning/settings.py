"""The ``[tune]`` settings: how the loop searches, gates and stops, and what a run learns from by default."""

from __future__ import annotations

from typing import Any

import attrs

from amk.core.backend import Backend
from amk.core.config import AmkConfig
from amk.core.records import MeasurementKind


def default_learning_kinds(backend: Backend) -> tuple[MeasurementKind, ...]:
    """What a run learns from unless told otherwise: its backend's own kind (a roofline run from
    predictions, a replay run from replayed points, so each run of a target starts from the previous
    one's results) and measurements (what hardware said is always worth learning from)."""
    own = backend.measurement_kind
    return (own,) if own is MeasurementKind.MEASURED else (own, MeasurementKind.MEASURED)


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0 or value == float("inf"):  # NaN and infinities too
        raise ValueError(f"{attribute.name}={value!r} must be a finite number >= 0")


def _at_least(minimum: int):
    def check(instance: Any, attribute: attrs.Attribute, value: int) -> None:
        if not value >= minimum:
            raise ValueError(f"{attribute.name}={value!r} must be >= {minimum}")

    return check


def _fraction(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{attribute.name}={value!r} must be >= 0 and < 1")


def _non_empty(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name}={value!r} must name a directory")


def _one_of(*choices: str):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name}={value!r} must be one of {list(choices)}")

    return check


@attrs.frozen
class TuneSettings:
    """The ``[tune]`` section of the config: how the loop searches, gates and stops."""

    budget: int = attrs.field(default=100, validator=_non_negative)  # configs to evaluate
    minutes: float = attrs.field(default=0.0, validator=_non_negative)  # wall-clock limit; 0: none
    policy: str = attrs.field(default="ensemble", validator=_one_of("ensemble", "surrogate", "prior"))
    exploration: str = attrs.field(default="uncertainty", validator=_one_of("uncertainty", "epsilon"))
    epsilon: float = attrs.field(default=0.1, validator=_fraction)  # for exploration = "epsilon"
    kappa: float = attrs.field(default=1.0, validator=_non_negative)  # for exploration = "uncertainty"
    trees: int = attrs.field(default=30, validator=_at_least(1))  # surrogate ensemble size
    warm_start: int = attrs.field(default=3, validator=_non_negative)  # seeds taken from the corpus
    shape_radius: float = attrs.field(default=1.0, validator=_non_negative)
    transfer: bool = True  # feed the corpus's latency of each config on other devices to the policy
    timeout_s: float = attrs.field(default=600.0, validator=_non_negative)  # per measurement; 0: none
    floor_tolerance: float = attrs.field(default=0.02, validator=_fraction)  # below floor*(1-tol): REJECTED
    # A measuring backend (cpu, cuda, command) evaluates again a config the corpus already measured for
    # this workload, device and backend version when the policy picks it: a latency depends on the
    # machine's state when it was taken (load, clocks, temperature), so an old measurement is not
    # comparable with this session's, and the keep/revert A/B needs both sides measured now; the new
    # sample joins the old ones in the corpus. False: take the recorded result, as deterministic backends
    # (roofline, replay) always do.
    remeasure: bool = True
    ab_rounds: int = attrs.field(default=5, validator=_non_negative)  # interleaved A/B pairs (measured backends)
    ab_noise: float = attrs.field(default=2.0, validator=_non_negative)  # margin in standard errors
    min_gain: float = attrs.field(default=0.005, validator=_fraction)  # smallest relative gain kept
    max_candidates: int = attrs.field(default=200_000, validator=_at_least(1))
    # state files and reports, relative to the working directory
    state_dir: str = attrs.field(default=".amk/tune", validator=_non_empty)
    # Where backend.measure runs: "process" (a worker process, killed on a timeout, whose death is a CRASH),
    # "thread" (in this process) or "auto" (the backend's own choice: process for compiled kernels).
    isolation: str = attrs.field(default="auto", validator=_one_of("auto", "process", "thread"))


def tune_settings(config: AmkConfig) -> TuneSettings:
    """The effective config's ``[tune]`` section, checked (ConfigError names the file and the key)."""
    return config.settings_for("tune", TuneSettings)
