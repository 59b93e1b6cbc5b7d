"""Measuring one config without letting the backend stop the loop, and the gates a result must pass.

``measure_guarded`` runs ``backend.measure`` in a daemon worker thread under a time limit: an exception
becomes a CRASH (a refused config a REJECTED), a measurement that does not return in time a TIMEOUT,
and the loop goes on. A hung measurement's thread is abandoned, not killed (Python cannot kill a
thread); it never blocks the process from exiting (:mod:`amk.tuning.isolation` measures in a worker
process instead, killed on a timeout, whose death is a CRASH). ``floor_guard`` rejects a latency below the
physical floor as an artifact (for backends that do not judge their own floor). ``ab_decision`` is the noise-aware keep/revert test of interleaved re-measurements.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import InvalidConfigError
from amk.core.records import Measurement, MeasurementKind, Verdict
from amk.core.workload import Workload


def measure_guarded(backend: Backend, workload: Workload, device: Device, config: Mapping[str, Any],
                    timeout_s: float | None) -> Measurement:
    """``backend.measure`` under ``timeout_s`` seconds (None: no limit); never raises for the backend."""
    result: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            result["measurement"] = backend.measure(workload, device, config)
        except BaseException as exc:  # the backend's failure is a result, whatever it is
            result["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"amk-measure-{backend.name}", daemon=True)
    worker.start()
    if not done.wait(timeout_s):
        return Measurement(verdict=Verdict.TIMEOUT, kind=backend.measurement_kind,
                           reason=f"no result within {timeout_s:g} s")
    error = result.get("error")
    if error is not None:
        return error_measurement(backend.measurement_kind, type(error).__name__, str(error),
                                 invalid_config=isinstance(error, InvalidConfigError))
    return checked_measurement(backend.measurement_kind, result.get("measurement"))


def error_measurement(kind: MeasurementKind, error_type: str, message: str, *, invalid_config: bool) -> Measurement:
    """What a backend's exception becomes: a refused config (InvalidConfigError) is REJECTED, anything else
    a CRASH whose reason is the exception's type and text. Shared by the thread and the process modes."""
    if invalid_config:
        return Measurement(verdict=Verdict.REJECTED, kind=kind, reason=message)
    text = f"{error_type}: {message}".strip()
    return Measurement(verdict=Verdict.CRASH, kind=kind, reason=text[:500])


def checked_measurement(kind: MeasurementKind, measurement: Any) -> Measurement:
    """``measurement`` itself when the backend returned a Measurement, else a CRASH saying what it returned."""
    if not isinstance(measurement, Measurement):
        return Measurement(verdict=Verdict.CRASH, kind=kind,
                           reason=f"the backend returned {type(measurement).__name__}, not a Measurement")
    return measurement


def floor_guard(measurement: Measurement, floor_us: float | None, tolerance: float) -> Measurement:
    """The measurement with the floor attached; a latency below ``floor * (1 - tolerance)`` is REJECTED.

    A measurement that carries its own bound was judged against it by the backend that measured it (the
    cpu backend re-measures the bandwidth and re-times before it believes a latency below its floor): the
    loop does not judge it again against the floor it computed at the start of the run, which may be
    stale. ``floor_us`` guards the backends that give no bound.
    """
    if floor_us is None or measurement.bound_us is not None:
        return measurement
    measurement = attrs.evolve(measurement, bound_us=floor_us)
    latency = measurement.latency_us
    if measurement.verdict is Verdict.PASS and latency is not None and latency < floor_us * (1 - tolerance):
        return attrs.evolve(
            measurement, verdict=Verdict.REJECTED,
            reason=f"latency {latency:.3f} us is below the physical floor {floor_us:.3f} us: a measurement artifact",
        )
    return measurement


@attrs.frozen
class ABResult:
    """The outcome of an interleaved A/B re-measurement of the incumbent and a challenger."""

    keep: bool
    incumbent_us: float | None  # median of the incumbent's re-measurements
    challenger_us: float | None
    margin_us: float  # how much faster the challenger had to be
    reason: str


def ab_decision(incumbent: Sequence[float], challenger: Sequence[float], *, min_gain: float,
                noise_factor: float) -> ABResult:
    """Keep the challenger only when its median beats the incumbent's by more than the noise.

    The margin is the larger of ``min_gain`` of the incumbent's median and ``noise_factor`` standard
    errors of the difference of medians (from each side's standard deviation), so a gain
    smaller than the run-to-run spread is never taken for an improvement.
    """
    if not incumbent or not challenger:
        missing = "incumbent" if not incumbent else "challenger"
        return ABResult(False, None, None, 0.0, f"the {missing} failed its re-measurement")
    inc, cha = statistics.median(incumbent), statistics.median(challenger)

    def sigma(xs: Sequence[float]) -> float:
        if len(xs) < 2:
            return 0.0
        # The median's standard error is about 1.25 standard deviations / sqrt(n). The sample standard
        # deviation, not the IQR: from a handful of repeats the IQR is too often tiny by luck, and an
        # outlier that inflates the deviation only makes the test more cautious.
        return statistics.stdev(xs) * 1.25 / len(xs) ** 0.5

    noise = (sigma(incumbent) ** 2 + sigma(challenger) ** 2) ** 0.5
    margin = max(min_gain * inc, noise_factor * noise)
    keep = cha < inc - margin
    verb = "beats" if keep else "does not beat"
    return ABResult(keep, inc, cha, margin,
                    f"challenger {cha:.3f} us {verb} incumbent {inc:.3f} us by more than {margin:.3f} us")
