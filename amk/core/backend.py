"""The backend kind: a workload's search space, and measuring one config on one device.

Optional capabilities, declared here with their defaults: ``availability`` (can run), ``local_device``
(None: measures no local hardware), ``record_config`` / ``knob_config`` (identity), ``floor_us`` (None:
unknown), ``deterministic`` (False: a config evaluated again may give another result).
``measurement_kind`` says what a backend's latencies are (measured, predicted, replayed) and
``isolation`` where ``[tune] isolation = "auto"`` runs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from amk.core.devices import Device
from amk.core.implementation import Implementation
from amk.core.records import Measurement, MeasurementKind
from amk.core.space import SearchSpace
from amk.core.workload import Workload


class Backend(Implementation, ABC):
    """Gives a workload's search space and measures one config on one device."""

    version: ClassVar[str] = "0"
    measurement_kind: ClassVar[MeasurementKind] = MeasurementKind.MEASURED
    # Where ``[tune] isolation = "auto"`` measures it: "process" for a backend that runs native code (a
    # segfault or hang must cost one record, not the run), "thread" for one that looks up or predicts.
    isolation: ClassVar[str] = "thread"
    # True when the same config on the same workload and device always gives the same result for one
    # ``version`` (a model or a lookup: roofline, replay): a tune run then never evaluates a config the
    # corpus already holds from this backend and version; it takes the recorded result instead.
    deterministic: ClassVar[bool] = False

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
