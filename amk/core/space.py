"""Search spaces: the knobs of a workload on a device, their legal values, and the constraints between them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from amk.core.errors import InvalidConfigError, ValidationError
from amk.core.restrictions import compile_restrictions


@attrs.frozen
class Knob:
    """One tunable parameter and its legal values (the first is the default unless ``default`` says)."""

    name: str
    choices: tuple[Any, ...] = attrs.field(converter=tuple)
    default: Any = None

    def __attrs_post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"knob {self.name!r} has no choices")
        if self.default is not None and self.default not in self.choices:
            raise ValueError(f"knob {self.name!r}: default {self.default!r} is not among its choices")

    @property
    def default_value(self) -> Any:
        return self.choices[0] if self.default is None else self.default


Constraint = Callable[[Mapping[str, Any]], bool]


@attrs.frozen
class SearchSpace:
    """The knobs of a workload on a device, the constraints a config must meet, and which configs are one.

    ``canonicalize`` maps a config to the representative of the configs that build the same kernel
    (e.g. a knob that has no effect under another knob's setting), so no kernel is measured twice.
    """

    knobs: tuple[Knob, ...] = attrs.field(converter=tuple)
    constraints: tuple[Constraint, ...] = attrs.field(default=(), converter=tuple)
    constraint_texts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    canonicalize: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # Whether ``default_config`` is a config someone chose (a backend's defaults, ``defaults`` given), not
    # merely each knob's first choice: only a chosen default is worth a cold start's first evaluation.
    default_known: bool = True

    @property
    def knob_names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def check(self, config: Mapping[str, Any]) -> None:
        """Raise InvalidConfigError naming the first problem of ``config``."""
        names = self.knob_names
        missing = [n for n in names if n not in config]
        unknown = sorted(set(config) - set(names))
        if missing or unknown:
            raise InvalidConfigError(
                f"config {dict(config)!r} has missing knobs {missing} and unknown knobs {unknown}; "
                f"the knobs are {names}."
            )
        for knob in self.knobs:
            if config[knob.name] not in knob.choices:
                raise InvalidConfigError(
                    f"{knob.name}={config[knob.name]!r} is not one of {list(knob.choices)}."
                )
        for i, constraint in enumerate(self.constraints):
            if not constraint(config):
                text = self.constraint_texts[i] if i < len(self.constraint_texts) else f"constraint #{i}"
                raise InvalidConfigError(f"config {dict(config)!r} breaks the constraint {text}.")

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        try:
            self.check(config)
        except InvalidConfigError:
            return False
        return True

    def canonical(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return self.canonicalize(config) if self.canonicalize else dict(config)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every valid config once per distinct kernel, in knob order."""
        seen: set[tuple] = set()
        names = self.knob_names
        for values in itertools.product(*(k.choices for k in self.knobs)):
            config = dict(zip(names, values))
            if not all(c(config) for c in self.constraints):
                continue
            canonical = self.canonical(config)
            key = tuple(canonical[n] for n in names)
            if key in seen:
                continue
            seen.add(key)
            yield canonical

    @property
    def default_config(self) -> dict[str, Any]:
        return {k.name: k.default_value for k in self.knobs}

    @classmethod
    def from_tune_params(cls, tune_params: Mapping[str, Any], restrictions: Any = (),
                         defaults: Mapping[str, Any] | None = None) -> SearchSpace:
        """A space from Kernel Tuner's pieces: ``tune_params`` (knob -> list of choices, in the order
        configs are enumerated), ``restrictions`` (expression strings or callables over the config dict,
        :mod:`amk.core.restrictions`) and optional ``defaults`` (knob -> its default; else the first choice).

        Raises ValidationError naming the knob or restriction at fault.
        """
        if not isinstance(tune_params, Mapping) or not tune_params:
            raise ValidationError(f"tune_params must map each knob to its list of choices, got {tune_params!r}.")
        defaults = dict(defaults or {})
        unknown = sorted(set(defaults) - set(tune_params))
        if unknown:
            raise ValidationError(f"defaults name {unknown}, which are not knobs; the knobs are {list(tune_params)}.")
        knobs = []
        for name, choices in tune_params.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValidationError(f"knob name {name!r} must be an identifier (letters, digits, _), so "
                                      "restrictions and command templates can name it.")
            if isinstance(choices, (str, bytes)) or not isinstance(choices, (list, tuple)) or not choices:
                raise ValidationError(f"knob {name!r} needs a non-empty list of choices, got {choices!r}.")
            bad = [c for c in choices if not isinstance(c, (int, float, str, bool))]
            if bad:
                raise ValidationError(f"knob {name!r} has choices {bad!r}; choices must be numbers, strings or bools.")
            if len(set(map(repr, choices))) != len(choices):
                raise ValidationError(f"knob {name!r} lists a choice twice: {list(choices)!r}.")
            try:
                knobs.append(Knob(name, tuple(choices), defaults.get(name)))
            except ValueError as exc:
                raise ValidationError(f"{exc}; fix the defaults.") from None
        if isinstance(restrictions, (str, bytes)) or callable(restrictions):
            restrictions = [restrictions]
        checks, texts = compile_restrictions(list(restrictions or ()), tune_params)
        return cls(knobs, constraints=checks, constraint_texts=texts, default_known=bool(defaults))
