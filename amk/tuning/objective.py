"""A Python callable as a backend: what lets amk's loop tune any objective (``amk.tune``) and what other
tools' loops (Optuna, Kernel Tuner) reuse to hand amk an evaluation function.

``ObjectiveBackend(objective, space)`` measures a config by calling ``objective(config)``, which returns
the config's latency (a positive, finite number in ``unit``), or a :class:`~amk.core.records.Measurement`
for full control, or raises: :class:`~amk.core.errors.WrongAnswerError` is a FAIL record,
:class:`~amk.core.errors.InvalidConfigError` a REJECTED one, any other exception a CRASH record naming
the exception (the loop's gates turn it into one). Anything else returned (None, 0, a negative number,
NaN, infinity, a string) is a CRASH record whose reason says what came back and what was expected.

The callable lives in this process, so the backend measures in a thread (``isolation = "thread"``): a
worker process could not rebuild it. A program that may hang or crash belongs in the ``command`` backend,
which runs it in a process of its own.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import ValidationError, WrongAnswerError
from amk.core.records import Measurement, MeasurementKind, Verdict, latency_to_us
from amk.core.restrictions import Restriction
from amk.core.space import SearchSpace
from amk.core.workload import Workload

Objective = Callable[[dict[str, Any]], Any]


def as_search_space(space: SearchSpace | Mapping[str, Any], restrictions: list[Restriction] | None = None) -> SearchSpace:
    """``space`` as a SearchSpace: a SearchSpace as it is, or a dict of knob -> choices (Kernel Tuner's
    ``tune_params``) with ``restrictions`` (expression strings or callables over the config dict).

    Raises ValidationError for a malformed space or restriction.
    """
    if isinstance(space, SearchSpace):
        if restrictions:
            raise ValidationError("restrictions go inside a SearchSpace given as the space (its constraints); "
                                  "pass the space as a dict of knob -> choices to add restrictions.")
        return space
    if isinstance(space, Mapping):
        if isinstance(restrictions, (str, bytes)) or callable(restrictions):
            restrictions = [restrictions]
        return SearchSpace.from_tune_params({name: python_choices(choices) for name, choices in space.items()},
                                            [guarded(r) for r in restrictions or ()])
    raise ValidationError(f"the space must be a dict of knob -> list of choices or a SearchSpace, got "
                          f"{type(space).__name__}.")


def python_choices(choices: Any) -> Any:
    """A knob's choices as Python values: a numpy array or a ``range`` becomes a list and a numpy scalar its
    Python number (``np.arange(4)``, ``[np.int64(8)]``: what Kernel Tuner's ``tune_params`` accept); anything
    else is left for :meth:`SearchSpace.from_tune_params` to check."""
    if isinstance(choices, range) or (type(choices).__module__ == "numpy" and hasattr(choices, "tolist")):
        choices = choices.tolist() if hasattr(choices, "tolist") else list(choices)
    if isinstance(choices, (list, tuple)):
        return [c.item() if type(c).__module__ == "numpy" and hasattr(c, "item") else c for c in choices]
    return choices


def guarded(restriction: Any) -> Any:
    """A callable restriction whose exception (``10 / c["x"]`` on x = 0) is a ValidationError naming it and
    the config, as an expression's is (:class:`amk.core.restrictions.CompiledRestriction`); strings and
    anything else pass through to be compiled or refused."""
    if isinstance(restriction, str) or not callable(restriction):
        return restriction
    name = getattr(restriction, "__qualname__", repr(restriction))

    @functools.wraps(restriction)
    def check(config: Mapping[str, Any]) -> bool:
        try:
            return bool(restriction(config))
        except Exception as exc:  # noqa: BLE001 (the caller's restriction failed: say which and where)
            raise ValidationError(f"the restriction {name} raised {type(exc).__name__} ({exc}) on the config "
                                  f"{dict(config)!r}; guard it (e.g. c['b'] > 0 and ...) or fix it.") from None

    return check


def latency_problem(value: Any, unit: str) -> str | None:
    """What is wrong with ``value`` as a latency in ``unit`` (None: a positive finite real number, numpy's
    included, not a bool): what an objective, or an Optuna trial's value, must return."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return None
    return f"the objective returned {value!r}; a latency is a positive finite number (in {unit})"


class ObjectiveBackend(Backend):
    """Measures a config by calling ``objective(config)``; the search space is given, not derived."""

    name: ClassVar[str] = "objective"
    version: ClassVar[str] = "1"
    isolation: ClassVar[str] = "thread"  # the callable cannot be rebuilt in a worker process

    def __init__(self, objective: Objective, space: SearchSpace, *, unit: str = "ms",
                 kind: MeasurementKind | str = MeasurementKind.MEASURED) -> None:
        super().__init__(None)
        if not callable(objective):
            raise ValidationError(f"the objective must be a callable taking the config dict, got {objective!r}.")
        latency_to_us(1.0, unit)  # refuses an unknown unit now, not at the first measurement
        self.objective = objective
        self.space = space
        self.unit = unit
        try:
            self.measurement_kind = MeasurementKind(kind)
        except ValueError:
            raise ValidationError(f"kind {kind!r} is not a measurement kind; give one of "
                                  f"{', '.join(repr(k.value) for k in MeasurementKind)}.") from None

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        return self.space

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        try:
            value = self.objective(dict(config))
        except WrongAnswerError as exc:
            return Measurement(verdict=Verdict.FAIL, kind=self.measurement_kind,
                               reason=f"wrong answer: {exc}"[:500])
        return self.measurement_of(value, config)

    def measurement_of(self, value: Any, config: Mapping[str, Any]) -> Measurement:
        """What the objective's return value means: a latency in ``unit`` is a PASS, a Measurement is
        itself, anything else a CRASH that says what came back."""
        if isinstance(value, Measurement):
            return value
        if latency_problem(value, self.unit) is None:
            return Measurement(verdict=Verdict.PASS, kind=self.measurement_kind,
                               latency_us=latency_to_us(float(value), self.unit), samples=1)
        reason = (f"the objective returned {value!r} for {dict(config)!r}; it must return the config's latency, a "
                  f"positive finite number (in {self.unit}), or raise")
        return Measurement(verdict=Verdict.CRASH, kind=self.measurement_kind, reason=reason[:500])
