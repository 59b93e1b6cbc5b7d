"""Kernel Tuner cache files (plain or .gz), read and written.

A cache is a JSON object with a header (``device_name``, ``kernel_name``, ``problem_size``,
``tune_params_keys``, ``tune_params``, ``objective``) and ``cache``: config key -> entry, where an entry
holds the tune parameters, ``time`` (mean, milliseconds) and ``times`` (the repeats), or a failure string
such as ``"RuntimeFailedConfig"`` in place of ``time``.

Each entry becomes one record: workload ``kernel_tuner``/kernel name/``{"problem_size": ...}`` (kept as
given, list or number), the header's device, the tune parameters as config, the median of ``times`` as
latency with the IQR as spread, and every other entry field kept in ``provenance.extra``.

Writing (``amk corpus export --format kernel-tuner``): one cache holds one kernel (workload) on one
device, so the records written must share both. Each record becomes the entry ``"v1,v2,..."`` (the tune parameter values in order) with its parameters,
``time`` in milliseconds (the entry's original ``time`` when the record was imported from Kernel Tuner,
else the latency), ``times`` and the other fields an import kept, and ``timestamp``; a failure writes
its Kernel Tuner marker (``InvalidConfig``, ``CompilationFailedConfig``, ``RuntimeFailedConfig``) in
place of ``time``. A cache holds one entry per config: of several records of one config, the last
wins. Importing the file again gives the same records (up to ``provenance.source``, which names the
file a record was read from).
"""

from __future__ import annotations

import gzip
import json
import statistics
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from amk.core.devices import Device, resolve_device
from amk.core.errors import AmkError, ExportError, ImportFormatError
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import CorpusProblem
from amk.core.workload import Workload
from amk.formats import ImportItem

KERNEL_TUNER_KIND = "kernel_tuner"  # the workload kind of an imported Kernel Tuner kernel
BACKEND_NAME = "kernel_tuner"
# Kernel Tuner's failure markers -> amk's verdicts; the marker itself is kept as the reason.
FAILURE_VERDICTS: dict[str, Verdict] = {
    "InvalidConfig": Verdict.REJECTED,
    "CompilationFailedConfig": Verdict.FAIL,
    "RuntimeFailedConfig": Verdict.CRASH,
}
_ENTRY_FIELDS_USED = ("time", "times", "timestamp")


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open("r", encoding="utf-8")


def looks_like_kernel_tuner(path: Path) -> bool:
    """True when the file starts like a Kernel Tuner cache (a JSON object with a Kernel Tuner header)."""
    try:
        with _open_text(path) as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return False
    return head.lstrip().startswith("{") and '"tune_params' in head and '"kernel_name"' in head


def _load(path: Path) -> tuple[dict[str, Any], str | None]:
    """The cache object, and a note when the file was not closed (an interrupted Kernel Tuner run)."""
    try:
        with _open_text(path) as f:
            text = f.read()
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"{path}: cannot be read as a Kernel Tuner cache ({exc}); check the file.") from None
    try:
        return json.loads(text), None
    except RecursionError:
        raise ImportFormatError(f"{path}: nested too deep to be a Kernel Tuner cache; check the file.") from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):  # an integer literal over Python's digit limit
            raise ImportFormatError(f"{path}: cannot be read as JSON ({exc}); check the file.") from None
        first_error = exc
    # Kernel Tuner appends entries as it goes and closes the object at the end; an interrupted run
    # leaves it open. Close it and read what was written.
    repaired = text.rstrip().rstrip(",") + "}}"
    try:
        return json.loads(repaired), "the file was not closed (an interrupted Kernel Tuner run); read what it holds"
    except (ValueError, RecursionError):
        raise ImportFormatError(
            f"{path}: not valid JSON ({first_error}); is it a Kernel Tuner cache file?"
        ) from None


def _header_problem(path: Path, data: dict[str, Any]) -> str | None:
    for key in ("kernel_name", "tune_params_keys", "cache"):
        if key not in data:
            return f"{path}: the Kernel Tuner header has no {key!r}; is it a Kernel Tuner cache file?"
    if not isinstance(data["cache"], dict):
        return f"{path}: 'cache' must be an object of config key -> entry."
    if not isinstance(data["tune_params_keys"], list) or not data["tune_params_keys"]:
        return f"{path}: 'tune_params_keys' must be a non-empty list of parameter names."
    return None


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _quartiles_us(times_ms: list[float]) -> tuple[float, float]:
    """Median and interquartile range, in microseconds."""
    us = sorted(t * 1000.0 for t in times_ms)
    median = statistics.median(us)
    if len(us) < 4:
        return median, 0.0
    q1, _, q3 = statistics.quantiles(us, n=4)
    return median, max(0.0, q3 - q1)


def _measurement(entry: dict[str, Any]) -> Measurement:
    time = entry.get("time")
    if isinstance(time, str):
        if time not in FAILURE_VERDICTS:  # "12" is not a latency: a wrong type, never read as one
            raise ValueError(f"'time' {time!r} is neither a number of milliseconds nor a Kernel Tuner failure "
                             f"marker ({', '.join(FAILURE_VERDICTS)})")
        return Measurement(verdict=FAILURE_VERDICTS[time], kind=MeasurementKind.MEASURED, reason=time)
    if isinstance(time, bool) or not isinstance(time, (int, float)) or not time > 0:
        raise ValueError(f"'time' must be a positive number of milliseconds or a failure marker, got {time!r}")
    times = entry.get("times")
    if isinstance(times, list) and times and all(isinstance(t, (int, float)) and t > 0 for t in times):
        median, spread = _quartiles_us(times)
        return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=median,
                           spread_us=spread, samples=len(times))
    return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=float(time) * 1000.0,
                       samples=1)


def read_kernel_tuner(path: Path, *, device: str | None = None) -> Iterator[ImportItem]:
    """Every cache entry of ``path`` as a record; ``device`` overrides (or supplies) the header's device."""
    data, note = _load(path)
    if not isinstance(data, dict):
        raise ImportFormatError(f"{path}: a Kernel Tuner cache is a JSON object, got {type(data).__name__}.")
    problem = _header_problem(path, data)
    if problem:
        raise ImportFormatError(problem)
    if note:
        yield ImportItem(problem=CorpusProblem(str(path), note))

    device_string = device or str(data.get("device_name") or "").strip()
    if not device_string:
        raise ImportFormatError(
            f"{path}: the cache's device_name is empty; pass --device NAME to say which device it was measured on."
        )
    dev: Device = resolve_device(device_string)
    params: list[str] = list(data["tune_params_keys"])
    problem_size = data.get("problem_size")
    shape = {"problem_size": problem_size} if problem_size is not None else {}
    try:
        workload = Workload(KERNEL_TUNER_KIND, str(data["kernel_name"]), shape)
    except (AmkError, RecursionError) as exc:
        raise ImportFormatError(f"{path}: {exc or 'the header is nested too deep'}") from None
    header_extra = {k: v for k, v in data.items() if k not in ("cache", "tune_params")}
    header_extra["device_name"] = data.get("device_name")

    for key, entry in data["cache"].items():
        where = f"{path}#{key}"
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"an entry must be an object, got {type(entry).__name__}")
            missing = [p for p in params if p not in entry]
            if missing:
                raise ValueError(f"the entry has no value for tune parameter(s) {missing}")
            config = {p: entry[p] for p in params}
            extra = {k: v for k, v in entry.items() if k not in params and k not in ("time", "timestamp")}
            if "time" in entry and not isinstance(entry["time"], str):
                extra["kernel_tuner_time_ms"] = entry["time"]
            record = Record(
                workload=workload,
                device=dev,
                config=config,
                measurement=_measurement(entry),
                provenance=Provenance(
                    backend=BACKEND_NAME,
                    backend_version=str(data.get("version") or data.get("schema_version") or ""),
                    timestamp=_timestamp(entry.get("timestamp")),
                    source=where,
                    extra={"entry": extra, "header": header_extra},
                ),
            )
        except (ValueError, TypeError, OverflowError, RecursionError, AmkError) as exc:
            reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deep"
            yield ImportItem(problem=CorpusProblem(where, reason))
            continue
        yield ImportItem(record=record)


# -- writing ------------------------------------------------------------------------------------------
KERNEL_TUNER_MARKERS = ("InvalidConfig", "CompilationFailedConfig", "RuntimeFailedConfig")
# amk verdicts -> the Kernel Tuner marker a failure is written as (when its reason is not one already).
VERDICT_MARKERS: dict[Verdict, str] = {
    Verdict.REJECTED: "InvalidConfig",
    Verdict.FAIL: "RuntimeFailedConfig",
    Verdict.CRASH: "RuntimeFailedConfig",
    Verdict.TIMEOUT: "RuntimeFailedConfig",
}
HEADER_ORDER = ("device_name", "kernel_name", "problem_size", "tune_params_keys", "tune_params", "objective")



def _sorted_values(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _entry_key(params: list[str], config: Mapping[str, Any]) -> str:
    return ",".join(str(config[p]) for p in params)


def _entry(record: Record, params: list[str]) -> dict[str, Any]:
    extra = record.provenance.extra.get("entry") if isinstance(record.provenance.extra, Mapping) else None
    extra = dict(extra) if isinstance(extra, Mapping) else {}
    original_time = extra.pop("kernel_tuner_time_ms", None)
    entry: dict[str, Any] = {p: record.config[p] for p in params}
    m = record.measurement
    if m.verdict is Verdict.PASS:
        entry["time"] = original_time if original_time is not None else m.latency_us / 1000.0
    else:
        entry["time"] = m.reason if m.reason in KERNEL_TUNER_MARKERS else VERDICT_MARKERS[m.verdict]
    entry.update(extra)
    if record.provenance.timestamp is not None:
        entry["timestamp"] = datetime.fromtimestamp(record.provenance.timestamp, tz=UTC).isoformat(sep=" ")
    return entry


def kernel_tuner_cache(records: Iterable[Record]) -> dict[str, Any]:
    """The Kernel Tuner cache object of ``records`` (one workload on one device)."""
    records = list(records)
    if not records:
        raise ExportError("no records to export; a Kernel Tuner cache needs at least one (check the filters).")
    first = records[0]
    targets = {(r.workload.key, r.device.name) for r in records}
    if len(targets) > 1:
        names = sorted({f"{r.workload.name} on {r.device.name}" for r in records})[:5]
        raise ExportError(
            f"a Kernel Tuner cache holds one kernel on one device, but the records span {len(targets)} "
            f"({', '.join(names)}, ...); filter with --device and --workload-name."
        )
    header = first.provenance.extra.get("header") if isinstance(first.provenance.extra, Mapping) else None
    header = dict(header) if isinstance(header, Mapping) else {}
    # Kernel Tuner keys entries by the values in tune_params_keys order; a store may have sorted the
    # config's keys, so the imported header's order wins when it names the same parameters.
    declared = header.get("tune_params_keys")
    params = list(declared) if isinstance(declared, list) and set(declared) == set(first.config) \
        else list(first.config)
    for r in records:
        if list(r.config) != params and set(r.config) != set(params):
            raise ExportError(
                f"record configs have different parameters ({sorted(params)} and {sorted(r.config)}); "
                "a Kernel Tuner cache needs one set of tune parameters."
            )
    data: dict[str, Any] = {
        "device_name": header.get("device_name") or first.device.name,
        "kernel_name": first.workload.name,
    }
    if "problem_size" in first.workload.shape:
        data["problem_size"] = first.workload.shape["problem_size"]
    data["tune_params_keys"] = params
    data["tune_params"] = {p: _sorted_values(list({json.dumps(r.config[p]): r.config[p] for r in records}.values()))
                           for p in params}
    data["objective"] = header.get("objective", "time")
    for key, value in header.items():  # whatever else the original header held (versions, ...)
        if key not in data and key not in ("tune_params",):
            data[key] = value
    data["cache"] = {_entry_key(params, r.config): _entry(r, params) for r in records}
    return data


def write_kernel_tuner(records: Iterable[Record], out: TextIO) -> int:
    """Write ``records`` to ``out`` as one Kernel Tuner cache file; returns the number of entries."""
    data = kernel_tuner_cache(records)
    json.dump(data, out, allow_nan=False)
    out.write("\n")
    return len(data["cache"])
