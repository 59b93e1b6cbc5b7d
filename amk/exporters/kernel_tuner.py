"""Writer of Kernel Tuner cache files: the inverse of :mod:`amk.importers.kernel_tuner`.

One cache holds one kernel (workload) on one device, so the records written must share both. Each
record becomes the entry ``"v1,v2,..."`` (the tune parameter values in order) with its parameters,
``time`` in milliseconds (the entry's original ``time`` when the record was imported from Kernel Tuner,
else the latency), ``times`` and the other fields an import kept, and ``timestamp``; a failure writes
its Kernel Tuner marker (``InvalidConfig``, ``CompilationFailedConfig``, ``RuntimeFailedConfig``) in
place of ``time``. A cache holds one entry per config: of several records of one config, the last
wins. Importing the file again gives the same records (up to ``provenance.source``, which names the
file a record was read from).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from amk.core.errors import AmkError
from amk.core.records import Record, Verdict

KERNEL_TUNER_MARKERS = ("InvalidConfig", "CompilationFailedConfig", "RuntimeFailedConfig")
# amk verdicts -> the Kernel Tuner marker a failure is written as (when its reason is not one already).
VERDICT_MARKERS: dict[Verdict, str] = {
    Verdict.REJECTED: "InvalidConfig",
    Verdict.FAIL: "RuntimeFailedConfig",
    Verdict.CRASH: "RuntimeFailedConfig",
    Verdict.TIMEOUT: "RuntimeFailedConfig",
}
HEADER_ORDER = ("device_name", "kernel_name", "problem_size", "tune_params_keys", "tune_params", "objective")


class ExportError(AmkError):
    """Records cannot be written in the requested format."""


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
