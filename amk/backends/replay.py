"""The ``replay`` backend: "measures" a config by looking it up in recorded tuning data.

The data is a tuning file amk reads (``cache = PATH``: a Kernel Tuner cache, T4 results, a Triton autotune
file; ``device = NAME`` names its device when the file names none, and without it such a file replays as
the tuned device), the records of a store (``store = URL``), or
records handed over in code (:meth:`ReplayBackend.from_records`, what ``amk simulate`` uses). A config
the data does not hold is a failed measurement; a recorded failure replays as the same verdict. Every
result is of kind ``replayed``, so it is never mistaken for a new measurement on hardware.

With ``samples = N`` each measurement draws N repeats (with replacement) from the recorded ``times``
that the Kernel Tuner importer keeps in ``provenance.extra``, so repeated measurements of one config
vary as the recorded ones did; with 0 (the default) a measurement is the recorded median itself.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np

from amk.core.backend import Backend
from amk.core.columns import config_key
from amk.core.config import open_store
from amk.core.devices import Device
from amk.core.errors import BackendError
from amk.core.records import Measurement, MeasurementKind, Record, Verdict
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload
from amk.formats.values import representative

ABSENT_REASON = "the config is not in the recorded data"


def recorded_times_ms(record: Record) -> list[float] | None:
    """The repeats a Kernel Tuner import kept for ``record`` (milliseconds), or None."""
    entry = record.provenance.extra.get("entry") if isinstance(record.provenance.extra, Mapping) else None
    times = entry.get("times") if isinstance(entry, Mapping) else None
    if isinstance(times, list) and times and all(isinstance(t, (int, float)) and t > 0 for t in times):
        return [float(t) for t in times]
    return None


def _shape_text(shape: Mapping[str, Any]) -> str:
    """A shape as JSON: what ``--shape`` reads back (a Python repr's quotes it does not)."""
    import json

    return json.dumps(shape, sort_keys=True)


def _target_key(workload: Workload, device: Device) -> tuple[str, str]:
    return workload.key, device.name


class RecordedData:
    """Records indexed by (workload, device) and then by config, for lookups in O(1); a config with several
    records replays as its :func:`~amk.formats.values.representative` (its fastest PASS, else its latest)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.by_target: dict[tuple[str, str], dict[str, Record]] = {}
        self.knob_order: dict[tuple[str, str], list[str]] = {}
        self.declared_choices: dict[tuple[str, str], dict[str, list[Any]]] = {}
        self.labels: dict[tuple[str, str], str] = {}
        self._knobs: dict[tuple[str, str], list[Knob]] = {}
        samples: dict[tuple[str, str], dict[str, list[Record]]] = {}
        for record in records:
            key = _target_key(record.workload, record.device)
            samples.setdefault(key, {}).setdefault(config_key(record.config), []).append(record)
            if key not in self.knob_order:
                self.labels[key] = f"{record.workload.name} ({_shape_text(record.workload.shape)}) on {record.device.name}"
                extra = record.provenance.extra
                header = extra.get("header") if isinstance(extra, Mapping) else None
                declared = header.get("tune_params_keys") if isinstance(header, Mapping) else None
                # A Kernel Tuner header's parameter order wins over a store's (sorted) key order.
                self.knob_order[key] = list(declared) if isinstance(declared, list) and \
                    set(declared) == set(record.config) else list(record.config)
                tune_params = header.get("tune_params") if isinstance(header, Mapping) else None
                if isinstance(tune_params, Mapping):
                    self.declared_choices[key] = {k: list(v) for k, v in tune_params.items() if isinstance(v, list)}
        self.by_target = {key: {config: representative(recs) for config, recs in table.items()}
                          for key, table in samples.items()}

    def table(self, workload: Workload, device: Device) -> dict[str, Record]:
        key = _target_key(workload, device)
        table = self.by_target.get(key)
        if table is None:
            known = ", ".join(sorted(self.labels.values())[:10]) or "nothing"
            raise BackendError(
                f"the replay data holds nothing for {workload.name!r} ({_shape_text(workload.shape)}) on {device.name!r}; "
                f"it holds: {known}. Check --workload and --device or the replay data."
            )
        return table

    def knobs(self, workload: Workload, device: Device) -> list[Knob]:
        key = _target_key(workload, device)
        table = self.table(workload, device)
        if key in self._knobs:
            return self._knobs[key]
        declared = self.declared_choices.get(key, {})
        knobs = []
        for name in self.knob_order[key]:
            seen = {config_key({"v": r.config[name]}): r.config[name] for r in table.values() if name in r.config}
            values = list(declared.get(name, []))
            # Keep the declared order; add values seen in the data the header did not declare.
            values += [v for v in _sorted_values(seen.values()) if v not in values]
            knobs.append(Knob(name, tuple(values)))
        self._knobs[key] = knobs
        return knobs


def _sorted_values(values: Iterable[Any]) -> list[Any]:
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


class ReplayBackend(Backend):
    name: ClassVar[str] = "replay"
    version: ClassVar[str] = "1"
    measurement_kind: ClassVar[MeasurementKind] = MeasurementKind.REPLAYED
    deterministic: ClassVar[bool] = True  # the same config gives the same result: never evaluated twice

    @attrs.frozen
    class Options:
        cache: str = ""  # a tuning file (Kernel Tuner cache, T4, Triton; plain or .gz) to replay
        store: str = ""  # or a store URL whose records are replayed (jsonl:PATH, sqlite:PATH, ...)
        device: str = ""  # the device of a file that names none (or to override it); default: the tuned one
        samples: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # repeats drawn per measurement from the recorded times; 0: the recorded median
        seed: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # seeds the draws of ``samples``
        recorded_only: bool = True  # the search space is the recorded configs (Kernel Tuner's restrictions)

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        if self.options.samples < 0:
            raise BackendError(f"[backend] replay samples={self.options.samples} must be >= 0.")
        self._data: RecordedData | None = None
        self._rng = np.random.default_rng(self.options.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_records(cls, records: Iterable[Record], **options: Any) -> ReplayBackend:
        """A replay backend over ``records`` held in memory."""
        backend = cls(cls.Options(**options))
        backend._data = RecordedData(records)
        return backend

    @property
    def data(self) -> RecordedData:
        if self._data is None:
            self._data = RecordedData(self._load_records())
        return self._data

    def _data_for(self, device: Device) -> RecordedData:
        """The data, loaded with ``device`` as the device of a file that names none."""
        if self._data is None:
            self._data = RecordedData(self._load_records(device.name))
        return self._data

    def _load_records(self, target_device: str | None = None) -> list[Record]:
        if bool(self.options.cache) == bool(self.options.store):
            raise BackendError(
                "the replay backend needs exactly one of 'cache' (a tuning file: a Kernel Tuner cache, T4 "
                "results, a Triton autotune file) and 'store' (a store URL): --backend-option cache=FILE or "
                "store=URL, or the key in the [backend] section of the config."
            )
        if self.options.cache:
            from amk.core.errors import ImportFormatError, LeftOutWarning
            from amk.formats import read_file

            path = Path(self.options.cache)
            if not path.is_file():
                raise BackendError(f"replay cache {str(path)!r} does not exist; check --backend-option cache= or [backend] cache.")
            try:
                items = list(read_file(path, device=self.options.device or None))
            except ImportFormatError as exc:
                if self.options.device or not target_device or "names no device" not in str(exc):
                    raise
                import warnings

                warnings.warn(f"replay cache {path} names no device; replayed as the tuned device {target_device!r} "
                              "(--backend-option device=NAME names it)", LeftOutWarning, stacklevel=2)
                items = list(read_file(path, device=target_device))
            return [item.record for item in items if item.record is not None]
        # The URL names the store; no config file is read (a worker process rebuilds this from its options).
        with open_store(self.options.store) as store:
            return list(store.query())

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        knobs = self._data_for(device).knobs(workload, device)
        if not self.options.recorded_only:
            return SearchSpace(knobs, default_known=False)  # a tuning file names no default config
        table = self._data_for(device).table(workload, device)
        return SearchSpace(
            knobs,
            constraints=(lambda config: config_key(config) in table,),
            constraint_texts=(("'recorded in the replay data' (Kernel Tuner only records configs its "
                               "restrictions allow)"),),
            default_known=False,
        )

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        record = self._data_for(device).table(workload, device).get(config_key(dict(config)))
        if record is None:
            return Measurement(verdict=Verdict.FAIL, kind=MeasurementKind.REPLAYED, reason=ABSENT_REASON)
        m = record.measurement
        if m.verdict is not Verdict.PASS:
            return Measurement(verdict=m.verdict, kind=MeasurementKind.REPLAYED,
                               reason=m.reason or f"recorded as {m.verdict.value}")
        times = recorded_times_ms(record)
        if self.options.samples and times:
            with self._lock:
                drawn = self._rng.choice(np.asarray(times), size=self.options.samples, replace=True)
            us = sorted(float(t) * 1000.0 for t in drawn)
            spread = (statistics.quantiles(us, n=4)[2] - statistics.quantiles(us, n=4)[0]) if len(us) >= 4 else 0.0
            return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.REPLAYED,
                               latency_us=statistics.median(us), spread_us=max(0.0, spread),
                               samples=len(us), bound_us=m.bound_us)
        return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.REPLAYED, latency_us=m.latency_us,
                           spread_us=m.spread_us, samples=m.samples, bound_us=m.bound_us)

    def floor_us(self, workload: Workload, device: Device) -> float | None:
        bounds = [r.measurement.bound_us for r in self._data_for(device).table(workload, device).values()
                  if r.measurement.bound_us is not None]
        return min(bounds) if bounds else None
