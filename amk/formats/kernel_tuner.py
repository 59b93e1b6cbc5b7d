"""Kernel Tuner cache files (plain or gzip), read in every shape they come in and written back.

A cache is a JSON object: a header (``device_name``, ``kernel_name``, ``problem_size``,
``tune_params_keys``, ``tune_params``, ``objective``) and ``cache``: config key -> entry, where an entry
holds the tune parameters, ``time`` (the mean of ``times``, milliseconds), ``times`` (the repeats) and
whatever else the run recorded. Kernel Tuner writes the file as it goes and closes it at the end, so an
interrupted run leaves it open (read whole, with a note); a cut-off file keeps its whole entries (the cut
is one problem); see :mod:`amk.formats.jsonwalk`.

A failed config is marked, depending on the Kernel Tuner version, by (first match wins):

- an ``__error__`` field (1.4 and later; there is then no ``time``),
- an ``error`` field (a development version of 2025),
- a marker string in ``time`` or in the objective's field (0.4.3 to 1.3: the objective field is ``time``
  unless another objective was tuned),
- ``time`` = 1e20 (0.3.0 to 0.4.2 wrote that number for a failure).

Markers: ``InvalidConfig`` -> REJECTED, ``CompilationFailedConfig`` -> FAIL, ``RuntimeFailedConfig`` ->
CRASH, ``ErrorConfig`` -> FAIL; the marker is kept as the verdict's reason, and the field it was in stays
in the record, so an export writes it back where it was read. ``time`` must otherwise be a finite number
> 0 and every sample of ``times`` too; an entry breaking that is reported naming the field. A NaN or
infinite number in another field (a metric) is kept as null, said once per file.

Each entry becomes one record: workload ``kernel_tuner``/kernel name/``{"problem_size": ...}`` (kept as
given; ``4096.0`` read as ``4096``), the device (``--device`` wins over the header's ``device_name``), the
tune parameters as config, the median of ``times`` as latency with their IQR as spread (``time`` alone
when there are no ``times``), ``timestamp`` (ISO 8601; without an offset it is UTC) and every other entry
field in ``provenance.extra["entry"]``, the header in ``provenance.extra["header"]``. The header's
``objective`` may be a string (up to 1.3) or a list (1.4 and later); the latency is always ``time``.

Writing (``amk corpus export --format kernel-tuner``): one cache holds one kernel on one device at one
problem size, so the records written must share all three. Each record becomes the entry ``"v1,v2,..."``
with its parameters, ``time`` (the entry's original when it was imported from Kernel Tuner, else the
latency in milliseconds, or the failure marker where the record's failure was marked by ``time``), the
fields the import kept (its ``__error__``/``error``/objective marker among them) and ``timestamp``. Of
several records of one config the last wins. Importing the file again gives the same records (up to
``provenance.source``, which names the file a record was read from).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from amk.core.devices import Device
from amk.core.errors import AmkError, ExportError, ImportFormatError, LeftOutWarning, MissingDependencyError
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.workload import Workload
from amk.formats import ImportItem, ImportOptions, file_device, read_file
from amk.formats.source import Source, check_header, position, walk_items
from amk.formats.values import (
    Tally,
    all_finite_positive,
    has_replacement,
    is_finite_number,
    kept_extra,
    median_and_iqr_us,
    note,
    parse_timestamp,
    problem,
    problem_size,
    representative,
    without_nonfinite,
)

KERNEL_TUNER_KIND = "kernel_tuner"  # the workload kind of an imported Kernel Tuner kernel
BACKEND_NAME = "kernel_tuner"
# Kernel Tuner's failure markers -> amk's verdicts; the marker itself is kept as the reason.
FAILURE_VERDICTS: dict[str, Verdict] = {
    "InvalidConfig": Verdict.REJECTED,
    "CompilationFailedConfig": Verdict.FAIL,
    "RuntimeFailedConfig": Verdict.CRASH,
    "ErrorConfig": Verdict.FAIL,
}
KERNEL_TUNER_MARKERS = tuple(FAILURE_VERDICTS)
MARKER_FIELDS = ("__error__", "error")  # fields that hold only a failure marker (1.4+, a 2025 development version)
# Kernel Tuner 0.3.0 to 0.4.2 wrote this time for a failed config.
FAILURE_SENTINEL_MS = 1e20


def looks_like_kernel_tuner(source: Source) -> bool:
    """True when the file is a JSON object with a ``cache`` member and a Kernel Tuner header key, or, cut off
    before its ``cache``, with ``kernel_name`` and another header key."""
    document = source.document()
    fields = document.fields
    if document.not_an_object:
        return False
    if "cache" in fields:
        return isinstance(fields["cache"], dict) and \
            any(k in fields for k in ("tune_params_keys", "kernel_name", "tune_params"))
    return document.state != "closed" and "kernel_name" in fields and \
        any(k in fields for k in ("device_name", "problem_size", "tune_params_keys"))


def read_kernel_tuner(path: Path, *, device: str | None = None) -> Iterator[ImportItem]:
    """Every entry of the cache ``path`` as an item; ``device`` overrides (or supplies) the header's device."""
    return read_file(path, "kernel-tuner", options=ImportOptions(device=device))


def _header(path: Path, fields: Mapping[str, Any], torn: bool) -> None:
    for key in ("kernel_name", "tune_params_keys", "cache"):
        if key not in fields:
            cut = " (the file is cut off before it)" if torn else ""
            raise ImportFormatError(f"{path}: the Kernel Tuner header has no {key!r}{cut}; is it a Kernel Tuner "
                                    "cache file?")
    if not isinstance(fields["cache"], dict):
        raise ImportFormatError(f"{path}: 'cache' must be an object of config key -> entry.")
    keys = fields["tune_params_keys"]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ImportFormatError(f"{path}: 'tune_params_keys' must be a non-empty list of parameter names.")
    if has_replacement(keys):
        raise ImportFormatError(f"{path}: 'tune_params_keys' {keys!r} holds bytes that are not UTF-8, so no entry "
                                "can be matched to its parameters; fix the file's header.")


def _marker(entry: Mapping[str, Any], params: set[str]) -> tuple[str, str] | None:
    """(marker, field) of a failed entry, by Kernel Tuner's versions' rules (see the module docstring)."""
    for field in MARKER_FIELDS:
        value = entry.get(field)
        if isinstance(value, str) and value:
            return value, field
    time = entry.get("time")
    if isinstance(time, str) and time in FAILURE_VERDICTS:
        return time, "time"
    if is_finite_number(time):
        return None  # a measured time: markers of Kernel Tuner <= 1.3 stand in place of the time
    for field, value in entry.items():
        if field not in params and isinstance(value, str) and value in FAILURE_VERDICTS:
            return value, field
    return None


def entry_measurement(entry: Mapping[str, Any], params: Iterable[str] = ()) -> Measurement:
    """The verdict and latency of a cache entry (or a Kernel Tuner result dict) whose tune parameters are
    ``params``; ValueError naming the field when neither can be read. Times are milliseconds; the
    Measurement's are microseconds."""
    params = set(params)
    marked = _marker(entry, params)
    if marked is not None:
        marker = marked[0]
        verdict = FAILURE_VERDICTS.get(marker, Verdict.FAIL)
        return Measurement(verdict=verdict, kind=MeasurementKind.MEASURED, reason=marker)
    if "time" not in entry:
        raise ValueError("the entry has no 'time' and no failure marker (__error__, or a marker string such as "
                         "'RuntimeFailedConfig')")
    time = entry["time"]
    if isinstance(time, str):
        raise ValueError(f"'time' is {time!r}: neither a number of milliseconds nor a failure marker Kernel Tuner "
                         f"writes ({', '.join(KERNEL_TUNER_MARKERS)})")
    if not is_finite_number(time) or not time > 0:
        raise ValueError(f"'time' is {time!r}: it must be a finite number of milliseconds > 0")
    if time >= FAILURE_SENTINEL_MS:
        return Measurement(verdict=Verdict.FAIL, kind=MeasurementKind.MEASURED,
                           reason=f"time {time!r}: Kernel Tuner 0.4.2 and older wrote 1e20 for a failed config")
    times = entry.get("times")
    if times is None or times == []:
        return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=float(time) * 1000.0,
                           samples=1)
    if not isinstance(times, list):
        raise ValueError(f"'times' is {times!r}: it must be a list of milliseconds")
    if not all_finite_positive(times):
        i, sample = next((i, t) for i, t in enumerate(times) if not is_finite_number(t) or not t > 0)
        raise ValueError(f"'times[{i}]' is {sample!r}: every sample must be a finite number of milliseconds > 0")
    median, spread = median_and_iqr_us(times, 1000.0)
    return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=median, spread_us=spread,
                       samples=len(times))


def _workload(path: Path, fields: Mapping[str, Any]) -> Workload:
    shape = {"problem_size": problem_size(fields["problem_size"])} if fields.get("problem_size") is not None else {}
    try:
        return Workload(KERNEL_TUNER_KIND, str(fields["kernel_name"]), shape)
    except AmkError as exc:
        raise ImportFormatError(f"{path}: {exc}") from None


def read_kernel_tuner_source(source: Source, options: ImportOptions) -> Iterator[ImportItem]:
    """Every cache entry of ``source`` as an item (see the module docstring)."""
    path = source.path
    document = source.document()
    if document.not_an_object:
        raise ImportFormatError(f"{path}: not a Kernel Tuner cache ({document.not_an_object}).")
    fields = document.fields
    check_header(source, "cache")
    _header(path, fields, document.state == "torn")
    dev = file_device(path, fields.get("device_name"), options.device)
    if options.device:
        yield note(str(path), f"device {dev.name!r} from --device (the file says {fields.get('device_name')!r})")
    yield from _schema_items(source)
    workload = _workload(path, fields)
    params: list[str] = list(fields["tune_params_keys"])
    param_set = set(params)
    header_found: list[str] = []
    header_extra = without_nonfinite({k: v for k, v in fields.items() if k not in ("cache", "tune_params")}, "",
                                     header_found)
    header_extra["device_name"] = fields.get("device_name")
    backend_version = str(fields.get("version") or fields.get("schema_version") or "")
    tally = Tally(str(path))
    if header_found:
        tally.add(f"header field(s) {', '.join(header_found)} NaN or infinite, kept as null", "the header")

    replaced = bool(source.replaced)
    read = 0
    for item in document.entries("cache"):
        where = f"{path}#{item.key}"
        read += 1
        try:
            record = _record(item.key, item.value, params, param_set, workload, dev, where, header_extra,
                             backend_version, tally, replaced)
        except (ValueError, TypeError, AmkError) as exc:
            yield problem(where, str(exc))
            continue
        yield ImportItem(record=record)
    yield from walk_items(source, "cache", read)
    _tally_replaced_bytes(source, tally)
    yield from tally.notes()


def _record(key: str, entry: Any, params: list[str], param_set: set[str], workload: Workload, dev: Device,
            where: str, header_extra: dict[str, Any], backend_version: str, tally: Tally,
            replaced: bool = True) -> Record:
    """One entry's record; ``replaced`` says whether the file had bytes that are not UTF-8."""
    if not isinstance(entry, dict):
        raise ValueError(f"an entry must be an object, got {type(entry).__name__}")
    missing = [p for p in params if p not in entry]
    if missing:
        raise ValueError(f"the entry has no value for tune parameter(s) {missing}")
    config = {p: entry[p] for p in params}
    for name, value in config.items():
        if replaced and has_replacement(value):
            raise ValueError(f"tune parameter {name!r} = {value!r} holds bytes that are not UTF-8")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"tune parameter {name!r} is {value!r}, not a value a kernel can be built with")
    measurement = entry_measurement(entry, param_set)
    timestamp, readable = parse_timestamp(entry.get("timestamp"))
    if not readable:
        tally.add(f"a 'timestamp' amk cannot read (e.g. {entry.get('timestamp')!r}), imported without one", key)
    found: list[str] = []
    extra = {k: v for k, v in entry.items() if k not in param_set and k not in ("time", "timestamp")}
    extra = without_nonfinite(extra, "", found)
    if "time" in entry and not isinstance(entry["time"], str):
        extra["kernel_tuner_time_ms"] = entry["time"]
    for field in found:
        tally.add(f"{field!r} NaN or infinite, kept as null", key)
    record = Record(
        workload=workload, device=dev, config=config, measurement=measurement,
        provenance=Provenance(backend=BACKEND_NAME, backend_version=backend_version, timestamp=timestamp,
                              source=where, extra={"entry": extra, "header": header_extra}),
    )
    if key != _entry_key(params, config):  # Kernel Tuner keys an entry by its values in tune_params_keys order
        tally.add("a cache key that disagrees with the entry's own parameter values (read by the values)", key)
    return record


def _tally_replaced_bytes(source: Source, tally: Tally) -> None:
    """Where each byte that was not UTF-8 was (its entry, or the header), for one note per file."""
    text, document = source.text(), source.document()
    holders: dict[str, list[str]] = {}
    for index, raw in source.replaced:
        entry = document.entry_at(index)
        holder = f"entry {entry.key!r}" if entry is not None else "the header"
        holders.setdefault(holder, []).append(f"{raw!r} at {position(text, index)}")
    for holder, places in holders.items():
        tally.add("bytes that are not UTF-8 replaced by U+FFFD", f"{holder}: {', '.join(places)}")


def _schema_items(source: Source) -> Iterator[ImportItem]:
    """A cache that declares ``schema_version`` is checked against that schema when the installed
    kernel_tuner ships it (``kernel_tuner/schema/cache/<version>/schema.json``); else a note says so."""
    fields = source.document().fields
    version = fields.get("schema_version")
    if version is None:
        return
    from amk.formats.schemas import kernel_tuner_schema, schema_errors

    try:
        schema = kernel_tuner_schema("cache", str(version), "schema.json")
    except MissingDependencyError as exc:
        yield note(str(source.path), f"declares cache schema_version {version!r}, not checked: {exc}")
        return
    if schema is None:
        yield note(str(source.path), f"declares cache schema_version {version!r}; the installed kernel_tuner ships no "
                                     "such cache schema, so amk checked it by its own rules only")
        return
    for where, message in schema_errors(schema, fields):
        key = where[1] if len(where) > 1 and where[0] == "cache" else None
        yield problem(f"{source.path}#{key}" if key is not None else str(source.path),
                      f"breaks Kernel Tuner's cache schema {version}: {message}")


# -- writing ------------------------------------------------------------------------------------------
# amk verdicts -> the Kernel Tuner marker a failure is written as (when its reason is not one already): each
# reads back as the same verdict (FAILURE_VERDICTS) but TIMEOUT, which Kernel Tuner has no marker for.
VERDICT_MARKERS: dict[Verdict, str] = {
    Verdict.REJECTED: "InvalidConfig",
    Verdict.FAIL: "ErrorConfig",
    Verdict.CRASH: "RuntimeFailedConfig",
    Verdict.TIMEOUT: "RuntimeFailedConfig",
}


def _sorted_values(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _entry_key(params: list[str], config: Mapping[str, Any]) -> str:
    return ",".join(str(config[p]) for p in params)



def _entry(record: Record, params: list[str]) -> dict[str, Any]:
    extra = kept_extra(record, "entry")
    original_time = extra.pop("kernel_tuner_time_ms", None)
    entry: dict[str, Any] = {p: record.config[p] for p in params}
    m = record.measurement
    marked_elsewhere = any(isinstance(v, str) and v in FAILURE_VERDICTS for k, v in extra.items() if k not in params)
    if original_time is not None:
        entry["time"] = original_time
    elif m.verdict is Verdict.PASS:
        entry["time"] = m.latency_us / 1000.0
    elif not marked_elsewhere:
        entry["time"] = m.reason if m.reason in FAILURE_VERDICTS else VERDICT_MARKERS[m.verdict]
    entry.update(extra)
    if record.provenance.timestamp is not None:
        entry["timestamp"] = datetime.fromtimestamp(record.provenance.timestamp, tz=UTC).isoformat(sep=" ")
    return entry


def one_target(records: list[Record], what: str) -> None:
    """ExportError unless ``records`` are one kernel on one device at one shape, naming what differs."""
    if not records:
        raise ExportError(f"no records to export; {what} needs at least one (check the filters).")
    kernels = sorted({f"{r.workload.kind}:{r.workload.name}" for r in records})
    devices = sorted({r.device.name for r in records})
    shapes = sorted({json.dumps(r.workload.shape, sort_keys=True) for r in records})
    def some(names: list[str], sep: str) -> str:
        return sep.join(names[:5]) + (f"{sep}... ({len(names) - 5} more)" if len(names) > 5 else "")

    differ = []
    if len(kernels) > 1:
        differ.append(f"{len(kernels)} kernels ({some(kernels, ', ')}): choose one with --workload-name")
    if len(devices) > 1:
        differ.append(f"{len(devices)} devices ({some(devices, ', ')}): choose one with --device")
    if len(shapes) > 1:
        shown = [json.dumps(s["problem_size"]) if set(s) == {"problem_size"} else json.dumps(s)
                 for s in (json.loads(text) for text in shapes)]
        differ.append(f"{len(shapes)} problem sizes ({some(shown, '; ')}): choose one with --problem-size "
                      "(or --shape)")
    if differ:
        raise ExportError(f"{what} holds one kernel on one device at one problem size, but the records span "
                          + "; ".join(differ) + ".")


def kernel_tuner_cache(records: Iterable[Record]) -> dict[str, Any]:
    """The Kernel Tuner cache object of ``records`` (one kernel on one device at one problem size)."""
    records = list(records)
    one_target(records, "a Kernel Tuner cache")
    first = records[0]
    header = kept_extra(first, "header")
    # Kernel Tuner keys entries by the values in tune_params_keys order; a store may have sorted the
    # config's keys, so the imported header's order wins when it names the same parameters.
    declared = header.get("tune_params_keys")
    params = list(declared) if isinstance(declared, list) and set(declared) == set(first.config) \
        else list(first.config)
    for r in records:
        if set(r.config) != set(params):
            raise ExportError(
                f"record configs have different parameters ({sorted(params)} and {sorted(r.config)}); "
                "a Kernel Tuner cache needs one set of tune parameters."
            )
    data: dict[str, Any] = {
        # The name as read; where the file named none (or the records came from elsewhere), amk's name.
        "device_name": header.get("device_name") or first.device.name,
        "kernel_name": first.workload.name,
    }
    if "problem_size" in header or "problem_size" in first.workload.shape:
        data["problem_size"] = header.get("problem_size", first.workload.shape.get("problem_size"))
    data["tune_params_keys"] = params
    data["tune_params"] = {p: _sorted_values(list({json.dumps(r.config[p]): r.config[p] for r in records}.values()))
                           for p in params}
    data["objective"] = header.get("objective", "time")
    if first.provenance.backend == BACKEND_NAME:  # whatever else a Kernel Tuner header held (versions, ...);
        for key, value in header.items():           # another format's (T4's schema_version) is not the cache's
            if key not in data and key not in ("tune_params",):
                data[key] = value
    data["cache"] = {key: _entry(r, params) for key, r in _one_per_config(records, params).items()}
    return data


def _one_per_config(records: list[Record], params: list[str]) -> dict[str, Record]:
    """The record each cache entry is written from, by entry key in first-seen order: a cache holds one
    entry per config, so a config with several records is its fastest PASS record (the stores' best-of,
    docs/stores.md), else its last one. A LeftOutWarning says how many records were left out so, and how
    many TIMEOUT records were written as RuntimeFailedConfig (Kernel Tuner has no timeout marker)."""
    import warnings

    samples: dict[str, list[Record]] = {}
    for record in records:
        samples.setdefault(_entry_key(params, record.config), []).append(record)
    chosen = {key: representative(recs) for key, recs in samples.items()}
    if len(records) > len(chosen):
        repeated = sum(1 for recs in samples.values() if len(recs) > 1)
        warnings.warn(f"{len(records) - len(chosen)} record(s) left out of the Kernel Tuner cache: it holds one "
                      f"entry per config and {repeated} config(s) have several records; each is written as its "
                      "fastest PASS record, else its last one", LeftOutWarning, stacklevel=3)
    timeouts = sum(1 for r in chosen.values()
                   if r.measurement.verdict is Verdict.TIMEOUT and r.measurement.reason not in FAILURE_VERDICTS)
    if timeouts:
        warnings.warn(f"{timeouts} TIMEOUT record(s) written as RuntimeFailedConfig: Kernel Tuner has no timeout "
                      "marker, so they import back as CRASH", LeftOutWarning, stacklevel=3)
    return chosen


def write_kernel_tuner(records: Iterable[Record], out: TextIO) -> int:
    """Write ``records`` to ``out`` as one Kernel Tuner cache file; returns the number of entries."""
    data = kernel_tuner_cache(records)
    json.dump(data, out, allow_nan=False)
    out.write("\n")
    return len(data["cache"])
