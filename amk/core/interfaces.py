"""The base classes of the pluggable kinds other than stores: featurizers, rankers and kernel backends.

Every implementation has a ``name``, an attrs ``Options`` class whose fields all have defaults, and a
``requires`` mapping (importable module -> the amk extra that installs it). ``__init__`` only stores
options, as in scikit-learn; learned state is set by ``fit`` in ``name_`` attributes.
"""

from __future__ import annotations

import itertools
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from amk.core.devices import Device
from amk.core.errors import AmkError, InvalidConfigError, UnsupportedOperationError
from amk.core.records import Measurement, MeasurementKind
from amk.core.workload import Workload

if TYPE_CHECKING:
    import numpy as np


@attrs.frozen
class NoOptions:
    """Options of an implementation that takes none."""


class NotFittedError(AmkError):
    """A ranker or featurizer was used before ``fit``."""


class Implementation:
    """What every pluggable class has: a name, an Options class and its optional requirements."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()


class Featurizer(Implementation, ABC):
    """(workload, device, config) -> a fixed-length numeric vector; vectorised over many points."""

    @abstractmethod
    def fit(self, workloads: Sequence[Workload], devices: Sequence[Device],
            configs: Sequence[Mapping[str, Any]]) -> Featurizer:
        """Learn encodings (knob names, categories) from the training points; returns self."""

    @abstractmethod
    def transform(self, workloads: Sequence[Workload], devices: Sequence[Device],
                  configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """A (n_points, n_features) float array; raises NotFittedError before ``fit``."""

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """The name of each column ``transform`` returns."""

    def transform_indexed(self, workloads: Sequence[Workload], devices: Sequence[Device],
                          configs: Sequence[Mapping[str, Any]], workload_index: np.ndarray,
                          device_index: np.ndarray, config_index: np.ndarray) -> np.ndarray:
        """``transform`` of the points (workloads[wi], devices[di], configs[ci]) given as index columns.

        The unique tables are what :class:`~amk.core.columns.CorpusColumns` holds; a featurizer that
        encodes workloads, devices and configs separately overrides this to encode each unique item once.
        """
        return self.transform([workloads[i] for i in workload_index], [devices[i] for i in device_index],
                              [configs[i] for i in config_index])

    def get_state(self) -> dict[str, Any]:
        """What ``fit`` learned, as JSON-ready data (for saving a trained prior without pickle)."""
        raise UnsupportedOperationError(f"the featurizer {self.name!r} cannot be saved")

    def set_state(self, state: Mapping[str, Any]) -> Featurizer:
        """Restore what ``get_state`` returned; returns self."""
        raise UnsupportedOperationError(f"the featurizer {self.name!r} cannot be loaded")


class Ranker(Implementation, ABC):
    """A learned model of a config's relative cost: fit on features, predict scores (lower = better)."""

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> Ranker:
        """Fit on features ``X``, targets ``y`` (lower = better) and optional query ``groups``; returns self."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores for ``X`` (lower = better); raises NotFittedError before ``fit``."""

    def predict_uncertainty(self, X: np.ndarray) -> np.ndarray | None:
        """A per-row uncertainty for exploration, or None when this ranker cannot tell."""
        return None

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to the directory ``path`` as data only (JSON, npz, text; never pickle)."""
        raise UnsupportedOperationError(f"the ranker {self.name!r} cannot be saved")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ranker:
        """Read a model ``save`` wrote; loading never executes code from the files."""
        raise UnsupportedOperationError(f"the ranker {cls.name!r} cannot be loaded")


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


class Backend(Implementation, ABC):
    """Gives a workload's search space and measures one config on one device."""

    version: ClassVar[str] = "0"
    measurement_kind: ClassVar[MeasurementKind] = MeasurementKind.MEASURED
    # Where ``[tune] isolation = "auto"`` measures it: "process" for a backend that runs native code (a
    # segfault or hang must cost one record, not the run), "thread" for one that looks up or predicts.
    isolation: ClassVar[str] = "thread"

    def availability(self) -> tuple[bool, str]:
        """Whether this backend can run here, and if not, why (shown by ``amk doctor``)."""
        return True, "available"

    def local_device(self) -> Device | None:
        """The device this backend measures on when it runs here (e.g. this machine's CPU or GPU, with
        its measured bandwidth); None for backends that measure no local hardware (replay, roofline).
        Call it only when ``availability()`` says the backend can run."""
        return None

    @abstractmethod
    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        """The knobs, choices and constraints of ``workload`` on ``device``."""

    def validate(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> None:
        """Raise InvalidConfigError when this backend would refuse ``config`` (knob or record form)."""
        self.search_space(workload, device).check(self.knob_config(workload, config))

    def record_config(self, workload: Workload, knobs: Mapping[str, Any]) -> dict[str, Any]:
        """The config as records store it, from a knob dict of the search space (identity by default).

        A backend whose records use a richer layout than flat knobs (amk's ScheduleConfig dict) maps
        here, so the corpus reads the same whichever backend wrote it.
        """
        return dict(knobs)

    def knob_config(self, workload: Workload, config: Mapping[str, Any]) -> dict[str, Any]:
        """The knob dict of a config in record form (the inverse of ``record_config``; identity by default).

        Raises InvalidConfigError when ``config`` cannot be one of this backend's (warm-start seeds from
        other backends' records pass through here).
        """
        return dict(config)

    @abstractmethod
    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        """Check correctness and time ``config``; a failure is a Measurement with a non-PASS verdict."""

    def floor_us(self, workload: Workload, device: Device) -> float | None:
        """The physical floor of ``workload`` on ``device`` in microseconds, when known."""
        return None
