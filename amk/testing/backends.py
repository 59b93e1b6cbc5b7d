"""The backend contract, on one workload and device the backend serves: a non-empty search space whose
default config is valid, validate refusing values outside it, measure returning a PASS of the backend's
measurement kind with a positive latency, and record_config / knob_config round-tripping."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import attrs

from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import InvalidConfigError
from amk.core.records import Measurement, MeasurementKind, Verdict
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload
from amk.testing._base import Check, CheckReport, bind, expect, run_checks

BackendFactory = Callable[[], Backend]
ISOLATIONS = ("thread", "process")
MAX_CONFIGS = 20  # configs of the space the per-config checks look at (the first ones, in knob order)


@attrs.frozen
class BackendSubject:
    """What the backend checks run on: ``make_backend()`` returns a new backend (a class will do), and
    ``workload`` on ``device`` is a target it serves (its search space is not empty there)."""

    make_backend: BackendFactory | None
    workload: Workload | None
    device: Device | None

    def fresh(self) -> Backend:
        """A new backend."""
        if self.make_backend is None or self.workload is None or self.device is None:
            raise TypeError("backend checks need make_backend, workload and device: pass them to "
                            "backend_checks(...) or to the check, check(make_backend=..., workload=..., device=...)")
        backend = self.make_backend()
        expect(isinstance(backend, Backend), f"make_backend must return a Backend, got {type(backend).__name__}")
        return backend

    def space(self, backend: Backend) -> SearchSpace:
        """The backend's search space of the subject's workload and device."""
        space = backend.search_space(self.workload, self.device)
        expect(isinstance(space, SearchSpace), f"search_space should return a SearchSpace, got {type(space).__name__}")
        return space

    def default(self, backend: Backend) -> dict[str, Any]:
        """The search space's default config, canonical (what a cold-start tune measures first)."""
        space = self.space(backend)
        return space.canonical(space.default_config)

    def some_configs(self, backend: Backend) -> list[dict[str, Any]]:
        """The first :data:`MAX_CONFIGS` configs of the search space."""
        return list(itertools.islice(iter(self.space(backend)), MAX_CONFIGS))


def value_outside(knob: Knob) -> Any:
    """A value of the knob's type that is none of its choices (one above the largest number, or a string)."""
    numbers = [c for c in knob.choices if isinstance(c, Real) and not isinstance(c, bool)]
    if numbers and len(numbers) == len(knob.choices):
        top = max(numbers)
        return top + 1 if all(isinstance(c, int) for c in numbers) else float(top) + 1.0
    return "amk.testing: not a choice"


def declares_its_kind_version_and_isolation(subject: BackendSubject) -> None:
    """measurement_kind is a MeasurementKind, version a non-empty string, isolation 'thread' or 'process'."""
    backend = subject.fresh()
    expect(isinstance(backend.measurement_kind, MeasurementKind),
           f"measurement_kind should be a MeasurementKind, got {backend.measurement_kind!r}")
    expect(isinstance(backend.version, str) and backend.version, f"version should be a non-empty string, got {backend.version!r}")
    expect(backend.isolation in ISOLATIONS, f"isolation should be one of {ISOLATIONS}, got {backend.isolation!r}")


def availability_is_a_flag_and_a_reason(subject: BackendSubject) -> None:
    """availability() returns (can run: bool, why: a non-empty string), and says it can run here."""
    available = subject.fresh().availability()
    expect(isinstance(available, tuple) and len(available) == 2 and isinstance(available[0], bool)
           and isinstance(available[1], str) and available[1],
           f"availability() should return (bool, non-empty str), got {available!r}")
    expect(available[0], f"the checks measure, so the backend must be available here; it says: {available[1]}")


def search_space_is_not_empty(subject: BackendSubject) -> None:
    """search_space has at least one knob, each with choices, and at least one valid config."""
    space = subject.space(subject.fresh())
    expect(space.knobs, "the search space should have at least one knob")
    names = space.knob_names
    expect(len(set(names)) == len(names), f"knob names should be distinct, got {names}")
    first = next(iter(space), None)
    expect(first is not None, "the search space should hold at least one config that meets its constraints")


def default_config_is_valid(subject: BackendSubject) -> None:
    """The search space's default config meets its constraints and validate accepts it."""
    backend = subject.fresh()
    space = subject.space(backend)
    default = space.canonical(space.default_config)
    try:
        space.check(default)
        backend.validate(subject.workload, subject.device, default)
    except InvalidConfigError as exc:
        raise AssertionError(f"the default config {default} should be valid: {exc}") from exc


def configs_of_the_space_are_valid(subject: BackendSubject) -> None:
    """validate accepts every config the search space yields (the first few)."""
    backend = subject.fresh()
    for config in subject.some_configs(backend):
        try:
            backend.validate(subject.workload, subject.device, config)
        except InvalidConfigError as exc:
            raise AssertionError(f"validate should accept {config}, a config of its own search space: {exc}") from exc


def validate_refuses_a_value_outside_the_space(subject: BackendSubject) -> None:
    """validate raises InvalidConfigError for a config with any one knob set outside its choices."""
    backend = subject.fresh()
    space = subject.space(backend)
    for knob in space.knobs:
        config = {**subject.default(backend), knob.name: value_outside(knob)}
        try:
            backend.validate(subject.workload, subject.device, config)
        except InvalidConfigError:
            continue
        except Exception as exc:
            raise AssertionError(f"validate of {knob.name}={config[knob.name]!r} (not one of {list(knob.choices)}) "
                                 f"should raise InvalidConfigError, got {type(exc).__name__}: {exc}") from exc
        raise AssertionError(f"validate should refuse {knob.name}={config[knob.name]!r}, not one of "
                             f"{list(knob.choices)}, with InvalidConfigError; it accepted it")


def measure_returns_a_pass_of_the_backends_kind(subject: BackendSubject) -> None:
    """measure of the default config returns a Measurement of measurement_kind: a PASS with a positive latency."""
    backend = subject.fresh()
    config = subject.default(backend)
    m = backend.measure(subject.workload, subject.device, config)
    expect(isinstance(m, Measurement), f"measure should return a Measurement, got {type(m).__name__}")
    expect(m.kind == backend.measurement_kind,
           f"measure should return a Measurement of kind {backend.measurement_kind.value}, got {m.kind.value}")
    expect(m.verdict is Verdict.PASS, f"the default config {config} should measure as PASS, got {m.verdict.value}: "
                                      f"{m.reason}")
    expect(m.latency_us is not None and math.isfinite(m.latency_us) and m.latency_us > 0,
           f"a PASS should have a positive, finite latency, got {m.latency_us!r}")


def floor_is_none_or_positive(subject: BackendSubject) -> None:
    """floor_us is None (unknown) or a positive, finite number of microseconds."""
    floor = subject.fresh().floor_us(subject.workload, subject.device)
    expect(floor is None or (isinstance(floor, Real) and math.isfinite(floor) and floor > 0),
           f"floor_us should be None or a positive number, got {floor!r}")


def record_config_is_json_ready_and_knob_config_inverts_it(subject: BackendSubject) -> None:
    """record_config of a config of the space is JSON-ready, and knob_config of it gives the config back."""
    backend = subject.fresh()
    for knobs in subject.some_configs(backend):
        record = backend.record_config(subject.workload, knobs)
        expect(isinstance(record, dict), f"record_config should return a dict, got {type(record).__name__}")
        try:
            as_json = json.loads(json.dumps(record))
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"record_config({knobs}) should be JSON-ready (records store it), got {record!r}: "
                                 f"{exc}") from exc
        back = backend.knob_config(subject.workload, as_json)
        expect(back == knobs, f"knob_config(record_config({knobs})) should give the config back, got {back}")


BACKEND_CHECKS: tuple[Callable[[BackendSubject], None], ...] = (
    declares_its_kind_version_and_isolation,
    availability_is_a_flag_and_a_reason,
    search_space_is_not_empty,
    default_config_is_valid,
    configs_of_the_space_are_valid,
    validate_refuses_a_value_outside_the_space,
    measure_returns_a_pass_of_the_backends_kind,
    floor_is_none_or_positive,
    record_config_is_json_ready_and_knob_config_inverts_it,
)


def backend_checks(make_backend: BackendFactory | None = None, workload: Workload | None = None,
                   device: Device | None = None, *, label: str = "") -> list[Check]:
    """Every backend check, bound to ``make_backend`` and a ``workload`` on a ``device`` it serves."""
    return bind("backend", BACKEND_CHECKS, BackendSubject(make_backend, workload, device), label)


def check_backend(make_backend: BackendFactory, workload: Workload, device: Device) -> CheckReport:
    """Run every backend check on new backends; AssertionError names each failed check."""
    return run_checks(backend_checks(make_backend, workload, device))
