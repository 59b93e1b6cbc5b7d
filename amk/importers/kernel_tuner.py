"""Reader of Kernel Tuner cache files (plain or .gz).

A cache is a JSON object with a header (``device_name``, ``kernel_name``, ``problem_size``,
``tune_params_keys``, ``tune_params``, ``objective``) and ``cache``: config key -> entry, where an entry
holds the tune parameters, ``time`` (mean, milliseconds) and ``times`` (the repeats), or a failure string
such as ``"RuntimeFailedConfig"`` in place of ``time``.

Each entry becomes one record: workload ``kernel_tuner``/kernel name/``{"problem_size": ...}`` (kept as
given, list or number), the header's device, the tune parameters as config, the median of ``times`` as
latency with the IQR as spread, and every other entry field kept in ``provenance.extra``.
"""

from __future__ import annotations

import gzip
import json
import statistics
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from amk.core.devices import Device, resolve_device
from amk.core.errors import AmkError, ImportFormatError
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import CorpusProblem
from amk.core.workload import KERNEL_TUNER_KIND, Workload
from amk.importers import ImportItem

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
    except json.JSONDecodeError as first_error:
        # Kernel Tuner appends entries as it goes and closes the object at the end; an interrupted run
        # leaves it open. Close it and read what was written.
        repaired = text.rstrip().rstrip(",") + "}}"
        try:
            return json.loads(repaired), "the file was not closed (an interrupted Kernel Tuner run); read what it holds"
        except json.JSONDecodeError:
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
        verdict = FAILURE_VERDICTS.get(time, Verdict.FAIL)
        return Measurement(verdict=verdict, kind=MeasurementKind.MEASURED, reason=time)
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
    except AmkError as exc:
        raise ImportFormatError(f"{path}: {exc}") from None
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
        except (ValueError, TypeError, AmkError) as exc:
            yield ImportItem(problem=CorpusProblem(where, str(exc)))
            continue
        yield ImportItem(record=record)
