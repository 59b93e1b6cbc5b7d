"""T4 results, read and written: the autotuning community's results format (schema ``T4/1.0.0``).

A T4 file is ``{"schema_version", "metadata", "results": [...]}``; each result holds ``configuration``
(the tune parameters), ``times`` (``runtimes``: every repeat; ``compilation`` or ``compilation_time``,
``framework``, ``search_algorithm``, ``validation``, ``benchmark``), ``invalidity`` (``correct``,
``compile``, ``runtime``, ``constraints``, ``timeout``, ``correctness``), ``correctness`` (1 = correct),
``measurements`` (``{name, value, unit}``; a failure's value may be its Kernel Tuner marker or ``""``),
``objectives`` and ``timestamp``. No kernel and no device is inside: the kernel, its problem size and
its search space come from a T1 input file (``--t1 FILE``, else the one T1 file beside the T4 file), or
``--kernel NAME`` (and ``--problem-size``); the device from ``--device``, else the file's ``metadata``
(one ``product_name``, as Kernel Tuner's metadata holds nvidia-smi's, or ``device_name``), else the T1
file's ``KernelSpecification.Device.Name``, else the file name before ``_T4`` (``A100_T4.json.gz``: ``A100``).
A note says which was used.

Each result becomes a record of the same workload as the kernel's Kernel Tuner cache (kind
``kernel_tuner``, the kernel's name, ``{"problem_size": ...}``), so a T4 file and its Kernel Tuner twin
import to the same configs, verdicts and latencies. The verdict: ``correct`` -> PASS (FAIL when
``correctness`` is below 1), ``compile`` -> FAIL, ``runtime`` -> CRASH, ``constraints`` -> REJECTED,
``timeout`` -> TIMEOUT, ``correctness`` -> FAIL; a Kernel Tuner marker in a measurement's value (older
converters left ``invalidity: correct`` and put the marker there) or an ``__error__`` measurement wins
over ``correct``. The latency is the median of ``runtimes`` (with their IQR as spread), else the
objective measurement's value; both in the file's time unit (``metadata.timeunit``; milliseconds when
absent, as Kernel Tuner writes; every spelling seen, ``miliseconds`` included). The result itself (less
its configuration) is kept in ``provenance.extra["t4"]``, so an export writes it back as read.

Writing (``amk corpus export --format t4``): one file per kernel on one device at one problem size;
results of T4 imports are written back as read, others built from the record (a Kernel Tuner import's
``times`` and timings included), with times in milliseconds. The document is checked against the T4
results schema the installed kernel_tuner ships before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from amk.core.devices import Device
from amk.core.errors import AmkError, ExportError, ImportFormatError, LeftOutWarning, MissingDependencyError
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.workload import Workload
from amk.formats import ImportItem, ImportOptions, file_device
from amk.formats.source import Source, check_header, walk_items
from amk.formats.t1 import KernelSpace, looks_like_t1, read_kernel_space
from amk.formats.values import (
    all_finite_positive,
    is_finite_number,
    kept_extra,
    median_and_iqr_us,
    note,
    parse_timestamp,
    problem,
    problem_size,
    without_nonfinite,
)

BACKEND_NAME = "t4"
SCHEMA_VERSION = "1.0.0"
# T4 invalidity -> (verdict, the reason amk keeps: Kernel Tuner's marker where it has one)
INVALIDITY: dict[str, tuple[Verdict, str | None]] = {
    "correct": (Verdict.PASS, None),
    "compile": (Verdict.FAIL, "CompilationFailedConfig"),
    "runtime": (Verdict.CRASH, "RuntimeFailedConfig"),
    "constraints": (Verdict.REJECTED, "InvalidConfig"),
    "timeout": (Verdict.TIMEOUT, "timeout"),
    "correctness": (Verdict.FAIL, "correctness"),
}
MARKER_INVALIDITY = {"CompilationFailedConfig": "compile", "RuntimeFailedConfig": "runtime",
                     "InvalidConfig": "constraints", "ErrorConfig": "runtime"}
# Time-unit spellings writers use -> microseconds per unit ("miliseconds": Kernel Tuner 1.2's metadata).
UNITS_US: dict[str, float] = {
    "ms": 1e3, "msec": 1e3, "millisecond": 1e3, "milliseconds": 1e3, "miliseconds": 1e3, "milisecond": 1e3,
    "us": 1.0, "µs": 1.0, "microsecond": 1.0, "microseconds": 1.0, "usec": 1.0,
    "ns": 1e-3, "nanosecond": 1e-3, "nanoseconds": 1e-3,
    "s": 1e6, "sec": 1e6, "second": 1e6, "seconds": 1e6,
}


def looks_like_t4(source: Source) -> bool:
    """True when the file is a JSON object whose ``results`` is a list (of objects with a configuration)."""
    fields = source.document().fields
    results = fields.get("results")
    return isinstance(results, list) and all(isinstance(r, dict) for r in results[:5]) and \
        (not results or "configuration" in results[0] or "schema_version" in fields)


def unit_us(text: Any, default: float | None) -> float | None:
    """Microseconds per ``text`` (a time unit as writers spell it); ``default`` for "" or None; None when unknown."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return default
    return UNITS_US.get(str(text).strip().lower())


def _kernel_space(source: Source, options: ImportOptions) -> tuple[KernelSpace | None, list[ImportItem]]:
    """The T1 space of a T4 file (``--t1``, else the one T1 file beside it), or None with ``--kernel``."""
    path = source.path
    if options.t1 is not None:
        return read_kernel_space(options.t1), []
    if options.kernel:
        return None, []
    beside = []
    for candidate in sorted(path.parent.glob("*.json")):
        if "T1" in candidate.name and candidate.is_file() and looks_like_t1(Source(candidate)):
            beside.append(candidate)
    if len(beside) == 1:
        space = read_kernel_space(beside[0])
        return space, [note(str(path), f"kernel {space.kernel!r} and its search space from {beside[0]} (the T1 "
                                       "input file beside it; --t1 chooses another)")]
    found = f"{len(beside)} T1 files beside it ({', '.join(p.name for p in beside)})" if beside else \
        "no T1 file beside it"
    raise ImportFormatError(f"{path}: T4 results name no kernel and there is {found}; pass --t1 FILE (the T1 input "
                            "file of the kernel) or --kernel NAME with --problem-size.")


def _metadata_devices(value: Any) -> set[str]:
    """Device names a T4 ``metadata`` holds (``product_name`` as nvidia-smi's XML has it, or a ``device_name``)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("product_name", "device_name") and isinstance(item, str) and item.strip():
                found.add(item.strip())
            else:
                found |= _metadata_devices(item)
    elif isinstance(value, list):
        for item in value:
            found |= _metadata_devices(item)
    return found


def _device_name(source: Source, options: ImportOptions, space: KernelSpace | None,
                 metadata: Mapping[str, Any]) -> tuple[str | None, str]:
    if options.device:
        return options.device, "--device"
    named = _metadata_devices(metadata)
    if len(named) == 1:
        return named.pop(), "the file's metadata"
    if space is not None and space.device:
        return space.device, f"the T1 file {space.source.name}"
    stem = source.path.name.split(".")[0]
    return (stem[: -len("_T4")] if stem.upper().endswith("_T4") else stem), "the file name"


def read_t4(source: Source, options: ImportOptions) -> Iterator[ImportItem]:
    """Every T4 result of ``source`` as an item (see the module docstring)."""
    path = source.path
    document = source.document()
    fields = document.fields
    if not isinstance(fields.get("results"), list):
        raise ImportFormatError(f"{path}: T4 results need a 'results' list.")
    check_header(source, "results")
    space, said = _kernel_space(source, options)
    yield from said
    metadata = fields.get("metadata") if isinstance(fields.get("metadata"), dict) else {}
    named, origin = _device_name(source, options, space, metadata)
    dev = file_device(path, named, options.device, field="file name" if origin == "the file name" else "device")
    yield note(str(path), f"device {dev.name!r} from {origin} ({named!r}); T4 results name no device")
    kernel = space.kernel if space else options.kernel
    size = space.problem_size if space else problem_size(options.problem_size) \
        if options.problem_size is not None else None
    try:
        workload = Workload("kernel_tuner", kernel, {"problem_size": size} if size is not None else {})
    except AmkError as exc:
        raise ImportFormatError(f"{path}: {exc}") from None
    file_unit = unit_us(metadata.get("timeunit"), 1e3)
    if file_unit is None:
        raise ImportFormatError(f"{path}: metadata.timeunit {metadata.get('timeunit')!r} is no time unit amk knows "
                                f"({', '.join(sorted(UNITS_US))}).")
    params = list(space.values) if space else None
    header: dict[str, Any] = {"schema_version": fields.get("schema_version"), "kernel_name": kernel}
    if size is not None:
        header["problem_size"] = size
    if params:
        header["tune_params_keys"] = params
    found: list[str] = []
    header["metadata"] = without_nonfinite(metadata, "metadata", found)
    if found:
        yield note(str(path), f"{', '.join(found)} NaN or infinite, kept as null")
    header["device_name"] = named
    read = 0
    held: list[ImportItem] = []  # the first results' problems while each is the same parameter mismatch
    for entry in document.entries("results"):
        read += 1
        where = f"{path}#results[{entry.key}]"
        try:
            record = _record(entry.value, params, workload, dev, file_unit, header, where)
        except (ValueError, TypeError, AmkError) as exc:
            if read == len(held) + 1 and str(exc).startswith(T1_MISMATCH) and \
                    all(str(exc) == h.problem.reason for h in held):
                held.append(problem(where, str(exc)))
                if len(held) == T1_MISMATCHES_REFUSED:  # every result would say it: the T1 is another kernel's
                    raise ImportFormatError(f"{path}: the first {len(held)} results' configurations differ from "
                                            f"the T1 file {space.source if space else ''}: {str(exc)[len(T1_MISMATCH):]}"
                                            "; it is not the T1 file of this kernel: pass the right one with --t1."
                                            ) from None
                continue
            yield from held
            held = []
            yield problem(where, str(exc))
            continue
        yield from held
        held = []
        yield ImportItem(record=record)
    yield from held
    yield from walk_items(source, "results", read)


T1_MISMATCH = "the configuration's parameters differ from the T1 file's: "
T1_MISMATCHES_REFUSED = 3  # this many first results with the same mismatch: the T1 file is another kernel's


def _verdict(result: Mapping[str, Any], measurements: dict[str, Mapping[str, Any]],
             objective: str) -> tuple[Verdict, str | None]:
    invalidity = result.get("invalidity")
    if invalidity not in INVALIDITY:
        raise ValueError(f"'invalidity' is {invalidity!r}; T4 knows {', '.join(INVALIDITY)}")
    value = (measurements.get(objective) or {}).get("value")
    if invalidity == "correct" and isinstance(value, str) and value in MARKER_INVALIDITY:
        invalidity = MARKER_INVALIDITY[value]
    if invalidity == "correct" and "__error__" in measurements:
        marker = measurements["__error__"].get("value")
        invalidity = MARKER_INVALIDITY.get(marker, "runtime") if isinstance(marker, str) else "runtime"
    verdict, reason = INVALIDITY[invalidity]
    correctness = result.get("correctness")
    if not is_finite_number(correctness):
        raise ValueError(f"'correctness' is {correctness!r}; it must be a number (1 = correct)")
    if verdict is Verdict.PASS and correctness < 1:
        return Verdict.FAIL, f"correctness {correctness!r}"
    return verdict, reason


def _latency(result: Mapping[str, Any], objective: Mapping[str, Any] | None, file_unit: float) -> Measurement:
    times = result.get("times") if isinstance(result.get("times"), dict) else {}
    runtimes = times.get("runtimes")
    if isinstance(runtimes, list) and runtimes:
        if not all_finite_positive(runtimes):
            i, sample = next((i, t) for i, t in enumerate(runtimes) if not is_finite_number(t) or not t > 0)
            raise ValueError(f"'times.runtimes[{i}]' is {sample!r}: every runtime must be a finite number > 0")
        median, spread = median_and_iqr_us(runtimes, file_unit)
        return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=median,
                           spread_us=spread, samples=len(runtimes))
    value = (objective or {}).get("value")
    if objective is None or not is_finite_number(value) or not value > 0:
        raise ValueError(f"a correct result needs 'times.runtimes' or a finite objective measurement > 0, got "
                         f"runtimes {runtimes!r} and objective {objective!r}")
    scale = unit_us(objective.get("unit"), file_unit)
    if scale is None:
        raise ValueError(f"the objective's unit {objective.get('unit')!r} is no time unit amk knows")
    return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=float(value) * scale,
                       samples=1)


def _record(result: Any, params: list[str] | None, workload: Workload, dev: Device, file_unit: float,
            header: dict[str, Any], where: str) -> Record:
    if not isinstance(result, dict):
        raise ValueError(f"a result must be an object, got {type(result).__name__}")
    config = result.get("configuration")
    if not isinstance(config, dict) or not config:
        raise ValueError("a result needs a 'configuration' object of the tune parameters")
    if params is not None:
        missing = [p for p in params if p not in config]
        unknown = sorted(set(config) - set(params))
        if missing or unknown:
            raise ValueError(f"{T1_MISMATCH}missing {missing}, unknown {unknown}")
        config = {p: config[p] for p in params}
    measurements = {m.get("name"): m for m in result.get("measurements") or [] if isinstance(m, dict)}
    objectives = result.get("objectives") if isinstance(result.get("objectives"), list) else []
    objective = next((o for o in objectives if isinstance(o, str)), "time")
    verdict, reason = _verdict(result, measurements, objective)
    if verdict is Verdict.PASS:
        measurement = _latency(result, measurements.get(objective) or measurements.get("time"), file_unit)
    else:
        measurement = Measurement(verdict=verdict, kind=MeasurementKind.MEASURED, reason=reason)
    timestamp, readable = parse_timestamp(result.get("timestamp"))
    if not readable:
        raise ValueError(f"'timestamp' {result.get('timestamp')!r} is no ISO 8601 time")
    kept = {k: v for k, v in result.items() if k != "configuration"}
    found: list[str] = []
    without_nonfinite(kept, "", found)
    if found:
        raise ValueError(f"{', '.join(found)} NaN or infinite")
    return Record(workload=workload, device=dev, config=config, measurement=measurement,
                  provenance=Provenance(backend=BACKEND_NAME, backend_version=str(header.get("schema_version") or ""),
                                        timestamp=timestamp, source=where, extra={"t4": kept, "header": header}))


# -- writing ------------------------------------------------------------------------------------------
# amk verdicts -> T4 invalidity, where the reason does not say more (a Kernel Tuner marker).
VERDICT_INVALIDITY = {Verdict.PASS: "correct", Verdict.REJECTED: "constraints", Verdict.FAIL: "correctness",
                      Verdict.CRASH: "runtime", Verdict.TIMEOUT: "timeout"}



def _built_result(record: Record, params: list[str]) -> dict[str, Any]:
    """A T4 result of a record that was not read from T4 (a Kernel Tuner import keeps its times)."""
    m = record.measurement
    entry = kept_extra(record, "entry")
    invalidity = MARKER_INVALIDITY.get(m.reason or "") or VERDICT_INVALIDITY[m.verdict]
    times: dict[str, Any] = {}
    for ours, theirs in (("compilation", "compile_time"), ("benchmark", "benchmark_time"),
                         ("framework", "framework_time"), ("search_algorithm", "strategy_time"),
                         ("validation", "verification_time")):
        if is_finite_number(entry.get(theirs)):
            times[ours] = entry[theirs]
    samples = entry.get("times")
    times["runtimes"] = [t for t in samples if is_finite_number(t)] if isinstance(samples, list) and \
        m.verdict is Verdict.PASS else []
    value: Any = m.latency_us / 1000.0 if m.verdict is Verdict.PASS else (m.reason or m.verdict.value)
    result: dict[str, Any] = {"configuration": {p: record.config[p] for p in params}, "times": times,
                              "invalidity": invalidity, "correctness": 1 if m.verdict is Verdict.PASS else 0,
                              "measurements": [{"name": "time", "value": value, "unit": "ms"}],
                              "objectives": ["time"]}
    for name, metric in entry.items():
        if name not in ("times", "kernel_tuner_time_ms", "__error__", "error") and is_finite_number(metric) \
                and not name.endswith("_time"):
            result["measurements"].append({"name": name, "value": metric, "unit": ""})
    if record.provenance.timestamp is not None:
        result["timestamp"] = datetime.fromtimestamp(record.provenance.timestamp, tz=UTC).isoformat(sep=" ")
    return result


def _result_in_ms(record: Record, params: list[str], us_per_unit: float) -> dict[str, Any]:
    """A result read from T4 as it was read, its times (``times``, the runtimes, an objective measurement
    without a unit of its own) in milliseconds: for a document whose results came in several units."""
    import copy

    kept = copy.deepcopy(kept_extra(record, "t4"))
    factor = us_per_unit / 1e3
    times = kept.get("times")
    for key, value in (times.items() if isinstance(times, dict) else ()):
        if isinstance(value, list):
            times[key] = [t * factor if is_finite_number(t) else t for t in value]
        elif is_finite_number(value):
            times[key] = value * factor
    objectives = [o for o in kept.get("objectives") or [] if isinstance(o, str)] or ["time"]
    for measurement in kept.get("measurements") or []:
        if isinstance(measurement, dict) and measurement.get("name") in objectives and \
                is_finite_number(measurement.get("value")) and unit_us(measurement.get("unit"), None) is None:
            measurement.update(value=measurement["value"] * factor, unit="ms")
    return {"configuration": {p: record.config[p] for p in params}, **kept}


def _kept_unit(record: Record) -> tuple[dict[str, Any], float] | None:
    """(metadata, microseconds per time unit) of a record read from T4, None for any other record."""
    kept = kept_extra(record, "t4")
    if not kept or record.provenance.backend != BACKEND_NAME:
        return None
    metadata = kept_extra(record, "header").get("metadata")
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    return metadata, unit_us(metadata.get("timeunit"), 1e3) or 0.0


def t4_document(records: Iterable[Record]) -> dict[str, Any]:
    """The T4 results document of ``records`` (one kernel on one device at one problem size).

    A result read from T4 is written back as read, with its file's ``metadata``, when every record is in
    milliseconds (the unit amk writes) and the T4 ones share one ``metadata``; otherwise a result read from
    T4 is written as read with its times in milliseconds, any other built from its record, with the device
    in ``metadata.device_name`` (T4 has no device field).
    """
    from amk.formats.kernel_tuner import one_target

    records = list(records)
    one_target(records, "a T4 results file")
    header = kept_extra(records[0], "header")
    declared = header.get("tune_params_keys")
    params = list(declared) if isinstance(declared, list) and set(declared) == set(records[0].config) \
        else list(records[0].config)
    units = [_kept_unit(r) for r in records]
    metadatas = {json.dumps(u[0], sort_keys=True) for u in units if u is not None}
    verbatim = len(metadatas) == 1 and all(u is None or u[1] == 1e3 for u in units)
    results = []
    for record, unit in zip(records, units):
        if set(record.config) != set(params):
            raise ExportError(f"record configs have different parameters ({sorted(params)} and "
                              f"{sorted(record.config)}); a T4 file holds one kernel's search space.")
        if verbatim and unit is not None:
            results.append({"configuration": {p: record.config[p] for p in params}, **kept_extra(record, "t4")})
        elif unit is not None:
            results.append(_result_in_ms(record, params, unit[1]))
        else:
            results.append(_built_result(record, params))
    metadata = json.loads(metadatas.pop()) if verbatim else {}
    metadata["timeunit"] = metadata.get("timeunit") or "milliseconds"
    if not verbatim:  # T4 has no device field; a T4 file's own metadata is written back as it was read
        metadata["device_name"] = records[0].device.name
    return {"schema_version": SCHEMA_VERSION, "metadata": metadata, "results": results}


def check_t4(document: Mapping[str, Any]) -> None:
    """ExportError naming the first problems when ``document`` breaks the T4 results schema kernel_tuner
    ships; a LeftOutWarning (not an error) when kernel_tuner or jsonschema is not installed to check it."""
    import warnings

    from amk.formats.schemas import kernel_tuner_schema, schema_errors

    try:
        schema = kernel_tuner_schema("T4", SCHEMA_VERSION, "results-schema.json")
        if schema is None:
            raise MissingDependencyError("the installed kernel_tuner ships no T4 1.0.0 results schema")
        errors = schema_errors(schema, document, limit=5)
    except MissingDependencyError as exc:
        warnings.warn(f"the T4 export was not checked against the T4 schema: {exc}", LeftOutWarning, stacklevel=3)
        return
    if errors:
        shown = "; ".join(f"{'/'.join(map(str, path)) or '(top)'}: {message}" for path, message in errors)
        raise ExportError(f"the T4 document breaks the T4 results schema ({shown}); nothing was written.")


def write_t4(records: Iterable[Record], out: TextIO) -> int:
    """Write ``records`` to ``out`` as one T4 results file, checked against the schema first; returns the
    number of results."""
    document = t4_document(records)
    check_t4(document)
    json.dump(document, out, allow_nan=False)
    out.write("\n")
    return len(document["results"])
