"""Triton autotune cache files (``<kernel>.autotune.json``), read.

With ``cache_results=True`` on ``@triton.autotune`` (or ``TRITON_CACHE_AUTOTUNING=1``) Triton keeps the
timings of every config it benchmarked in ``$TRITON_CACHE_DIR/<hash>/<kernel>.autotune.json``
(``Autotuner.check_disk_cache`` in ``triton/runtime/autotuner.py``): ``{"key": [...], "configs_timings":
[[config, timings], ...]}``. ``key`` is the tuning key: the values of the ``key=[...]`` arguments, then
the dtype of every tensor argument (recent Triton writes each as a string). A config is ``Config.__dict__``:
``kwargs`` (the meta-parameters), ``num_warps``, ``num_stages``, ``num_ctas``, ``maxnreg`` and
``ir_override`` (null unless set), ``pre_hook`` (always null in the file). ``timings`` is what
``do_bench(..., quantiles=(0.5, 0.2, 0.8))`` returned, in milliseconds: [median, 20th, 80th percentile];
a config that failed to compile or ran out of resources has ``[inf, inf, inf]``.

The file names **no device** (only the hash folder depends on the target), so ``--device`` is required.
Each config becomes one record: workload ``triton``/the kernel's name (the file name before
``.autotune.json``)/``{"key": [...]}`` (a numeric string read as its number, so both Triton writers'
files of one kernel and key are one workload), config = ``kwargs`` plus ``num_warps``, ``num_stages``,
``num_ctas`` and ``maxnreg``/``ir_override`` where set, latency = the median (no spread: Triton's
percentiles are not an interquartile range; they are kept in ``provenance.extra["triton"]``), samples
unknown; all-infinite timings are a FAIL ("failed to compile or out of resources"). No timestamp.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from amk.core.errors import AmkError, ImportFormatError
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.workload import Workload
from amk.formats import ImportItem, ImportOptions, file_device
from amk.formats.source import Source, check_header, walk_items
from amk.formats.values import is_finite_number, note, problem

BACKEND_NAME = "triton"
SUFFIX = ".autotune.json"
CONFIG_FIELDS = ("num_warps", "num_stages", "num_ctas")
OPTIONAL_FIELDS = ("maxnreg", "ir_override")
FAILED_REASON = "Triton timed it as infinite: it failed to compile or ran out of resources"
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def looks_like_triton(source: Source) -> bool:
    """True when the file is a JSON object with Triton's ``key`` and ``configs_timings``."""
    fields = source.document().fields
    return "configs_timings" in fields and "key" in fields


def _key_value(value: Any) -> Any:
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _config(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("kwargs", {}), dict):
        raise ValueError(f"a config must be Triton's Config fields with 'kwargs' an object, got {raw!r}")
    config = dict(raw.get("kwargs") or {})
    clash = sorted(set(config) & set(CONFIG_FIELDS + OPTIONAL_FIELDS))
    if clash:
        raise ValueError(f"meta-parameter(s) {clash} clash with Triton's own config fields")
    for field in CONFIG_FIELDS:
        if field in raw:
            config[field] = raw[field]
    for field in OPTIONAL_FIELDS:
        if raw.get(field) is not None:
            config[field] = raw[field]
    for name, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name!r} is {value!r}, not a value a kernel can be built with")
    return config


def _measurement(timings: Any) -> tuple[Measurement, list[float]]:
    values = timings if isinstance(timings, list) else [timings]
    if not values or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in values):
        raise ValueError(f"the timings must be milliseconds (a number or [median, p20, p80]), got {timings!r}")
    if any(math.isnan(t) for t in values):
        raise ValueError(f"the timings {timings!r} hold NaN")
    if all(math.isinf(t) for t in values):
        return Measurement(verdict=Verdict.FAIL, kind=MeasurementKind.MEASURED, reason=FAILED_REASON), []
    median = values[0]
    if not is_finite_number(median) or not median > 0:
        raise ValueError(f"the median timing {median!r} must be a finite number of milliseconds > 0")
    return Measurement(verdict=Verdict.PASS, kind=MeasurementKind.MEASURED, latency_us=median * 1000.0), values


def read_triton(source: Source, options: ImportOptions) -> Iterator[ImportItem]:
    """Every benchmarked config of a Triton autotune file as an item (see the module docstring)."""
    path = source.path
    fields = source.document().fields
    check_header(source, "configs_timings")
    if not options.device:
        raise ImportFormatError(f"{path}: a Triton autotune file names no device (only its cache folder's hash "
                                "depends on the GPU); pass --device NAME to say which device it was measured on.")
    dev = file_device(path, None, options.device)
    yield note(str(path), f"device {dev.name!r} from --device; Triton autotune files name no device")
    kernel = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name.split(".")[0]
    key = fields.get("key")
    if not isinstance(key, list) or not all(isinstance(k, (int, float, str)) and not isinstance(k, bool)
                                            for k in key):
        raise ImportFormatError(f"{path}: the tuning 'key' must be a list of numbers and strings, got {key!r}.")
    try:
        workload = Workload("triton", kernel, {"key": [_key_value(k) for k in key]})
    except AmkError as exc:
        raise ImportFormatError(f"{path}: {exc}") from None
    header = {"key": key}
    read = 0
    for entry in source.document().entries("configs_timings"):
        read += 1
        where = f"{path}#configs_timings[{entry.key}]"
        try:
            if not isinstance(entry.value, list) or len(entry.value) != 2:
                raise ValueError("an entry must be [config, timings]")
            config = _config(entry.value[0])
            measurement, timings = _measurement(entry.value[1])
            record = Record(workload=workload, device=dev, config=config, measurement=measurement,
                            provenance=Provenance(backend=BACKEND_NAME, source=where,
                                                  extra={"triton": {"timings_ms": timings}, "header": header}))
        except (ValueError, TypeError, AmkError) as exc:
            yield problem(where, str(exc))
            continue
        yield ImportItem(record=record)
    yield from walk_items(source, "configs_timings", read)
