"""The fast path of a jsonl read: a well-formed current-schema line to a columns row, without a ``Record``.

``record_from_dict`` (migrations, cattrs structuring, validation) costs most of a first read. The line
amk writes is always the same shape: every key present, JSON types exactly those of the fields. For such
a line the row is built here directly, with the checks that make the slow path accept it; a line this
module is not certain about (another schema version, a missing or extra key, a value of another type,
anything a validator could refuse) gets ``None`` and goes the slow way, so the columns and the problems
reported are exactly those of ``record_from_dict``. Conversions the slow path makes (cattrs' ``int()``,
``float()``, ``str()`` of other types) are never guessed at here: such values fall back too.

Workloads and devices repeat across lines, so each distinct one is built (and validated) by the real
classes once per read and looked up afterwards; configs are keyed by their canonical JSON, as
``ColumnsBuilder`` keys them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NamedTuple

import attrs

from amk.core.columns import KIND_CODES, VERDICT_CODES, ColumnsBuilder
from amk.core.devices import Device
from amk.core.errors import ValidationError
from amk.core.inputs import MAX_INT, MAX_RECORD_BYTES, check_value
from amk.core.migrations import SCHEMA_VERSION
from amk.core.records import MeasurementKind, Verdict, converter
from amk.core.workload import Workload

_RECORD_KEYS = frozenset({"schema_version", "workload", "device", "config", "measurement", "provenance"})
_WORKLOAD_KEYS = frozenset({"kind", "name", "shape"})
_DEVICE_KEYS = frozenset(a.name for a in attrs.fields(Device))
_MEASUREMENT_KEYS = frozenset({"verdict", "kind", "latency_us", "spread_us", "samples", "bound_us", "reason"})
_PROVENANCE_KEYS = frozenset({"backend", "backend_version", "timestamp", "notes", "source", "extra"})
_VERDICTS = {v.value: v for v in VERDICT_CODES}
_KINDS = {k.value: k for k in KIND_CODES}
_PASS = Verdict.PASS
_NUMBER = (int, float)
_isfinite = math.isfinite
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode  # as config_key and Workload.key
try:  # about 3x faster than json.loads; what it parses differently never passes the checks below
    from orjson import loads as _loads
except ImportError:  # orjson is optional (amk[fast]): without it the same rows, the read ~1.6x slower
    _loads = json.loads
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_HEAD = b'{"config":{'
_TAIL = b'}\n'
_DEVICE_AFTER_CONFIG = b'},"device":{'
_WORKLOAD_KEY = b',"workload":'


class ColumnsRow(NamedTuple):
    """One record's columns: the arguments of ``ColumnsBuilder.add_row``, keys computed once."""

    workload: Workload
    device: Device
    config: dict[str, Any]
    latency_us: float | None
    bound_us: float | None
    verdict: Verdict
    kind: MeasurementKind
    timestamp: float | None
    config_json: str
    source: str | None
    workload_key: str

    def add_to(self, builder: ColumnsBuilder) -> None:
        builder.add_row(*self)




def _number(value: Any) -> float | None:
    """``value`` as the float cattrs makes of it, when that is certain: an int or a float, finite."""
    kind = type(value)
    if kind is float:
        return value if _isfinite(value) else None
    if kind is int:
        return float(value) if -MAX_INT - 1 <= value <= MAX_INT else None  # the input limits' integer range
    return None


_BAD = object()  # a value only the slow path can judge


def _optional_amount(value: Any, *, zero_ok: bool = False) -> float | None | object:
    """A latency, bound or spread: None as None; an int or finite float above 0 (or 0 with ``zero_ok``) as
    the float cattrs makes of it; anything else ``_BAD``."""
    if value is None:
        return None
    out = _number(value)
    if out is None or out < 0 or (out == 0 and not zero_ok):
        return _BAD
    return out


class FastRows:
    """Rows of well-formed current-schema lines (see the module docstring); one instance per read."""

    def __init__(self) -> None:
        self._workloads: dict[bytes, tuple[Workload, str]] = {}  # canonical text -> workload, its key
        self._configs: dict[bytes, tuple[dict, str]] = {}  # canonical text -> config, config_key
        self._devices: dict[tuple, Device] = {}

    def row(self, raw: bytes) -> ColumnsRow | None:
        """The row of one line (with its newline), or None when only ``record_from_dict`` can say what it is."""
        if not raw.startswith(_HEAD) or not raw.endswith(_TAIL) or len(raw) > MAX_RECORD_BYTES:
            return None  # not a line amk wrote: no canonical texts to key configs and workloads by
        if _LONG_DIGITS.search(raw):
            return None  # an integer of 19+ digits may be over the limits, and orjson reads one as a float
        try:
            data = _loads(raw)
        except ValueError:  # not JSON to orjson (NaN, a lone surrogate, ...): json.loads says what it is
            return None
        try:
            return self._row(raw, data)
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError, ValidationError):
            return None

    def _row(self, raw: bytes, data: Any) -> ColumnsRow | None:
        if type(data) is not dict or data.keys() != _RECORD_KEYS:
            return None
        version = data["schema_version"]
        if type(version) is not int or version != SCHEMA_VERSION:
            return None
        config, config_json = self._config(raw, data["config"])
        if config is None:
            return None

        m = data["measurement"]
        if type(m) is not dict or m.keys() != _MEASUREMENT_KEYS:
            return None
        verdict = m["verdict"]
        kind = m["kind"]
        if type(verdict) is not str or type(kind) is not str:
            return None
        verdict = _VERDICTS.get(verdict)
        kind = _KINDS.get(kind)
        if verdict is None or kind is None:
            return None
        latency = _optional_amount(m["latency_us"])
        bound = _optional_amount(m["bound_us"])
        spread = _optional_amount(m["spread_us"], zero_ok=True)
        if latency is _BAD or bound is _BAD or spread is _BAD or (latency is None and verdict is _PASS):
            return None
        samples = m["samples"]
        if samples is not None and (type(samples) is not int or not 1 <= samples <= MAX_INT):
            return None
        reason = m["reason"]
        if reason is not None and type(reason) is not str:
            return None

        p = data["provenance"]
        if type(p) is not dict or p.keys() != _PROVENANCE_KEYS:
            return None
        if type(p["backend"]) is not str or type(p["backend_version"]) is not str or type(p["notes"]) is not str:
            return None
        source = p["source"]
        if source is not None and type(source) is not str:
            return None
        extra = p["extra"]
        if type(extra) is not dict:
            return None
        if extra:
            check_value(extra)  # the input limits (ValidationError: the slow path says which)
        timestamp = p["timestamp"]
        if timestamp is not None:
            # No validator: cattrs keeps any float, NaN and infinities included.
            kind_ = type(timestamp)
            if kind_ is int:
                timestamp = _number(timestamp)
                if timestamp is None:
                    return None
            elif kind_ is not float:
                return None
            if not _isfinite(timestamp):
                return None

        device = self._device(data["device"])
        if device is None:
            return None
        workload, workload_key = self._workload(raw, data["workload"])
        if workload is None:
            return None
        return ColumnsRow(workload, device, config, latency, bound, verdict, kind, timestamp, config_json, source,
                          workload_key)

    def _config(self, raw: bytes, value: Any) -> tuple[dict | None, str]:
        """The config by its text: the bytes after ``{"config":`` up to the ``}`` before ``,"device":{``.

        When those bytes are the canonical JSON of a config (checked the first time they are seen), they
        are the whole value of the line's first key: a complete JSON object is never the prefix of a
        longer one. That first key is the only one spelled ``"config":`` (no ``\\u`` escape can spell it
        otherwise), so no later duplicate key replaces it.
        """
        end = raw.find(_DEVICE_AFTER_CONFIG, 10)
        if end < 0 or raw.count(b'"config":') != 1 or b"\\u" in raw:
            return None, ""
        text = raw[10:end + 1]
        known = self._configs.get(text)
        if known is not None:
            return known
        if type(value) is not dict:
            return None, ""
        key = _dumps(value)
        if key.encode() != text:  # not canonical (or parsed otherwise by orjson): the slow path reads it
            return None, ""
        check_value(value)  # the input limits, once per distinct config (ValidationError: the slow path)
        self._configs[text] = known = (value, key)
        return known

    def _workload(self, raw: bytes, value: Any) -> tuple[Workload | None, str]:
        """The workload by its text: the bytes after the last ``,"workload":``, up to the line's closing ``}``.

        A ``,"workload":`` whose value is followed only by ``}`` and the newline is the top-level object's
        last key, which a duplicate could not override; once those bytes are known canonical JSON of a
        valid workload, equal bytes are that workload.
        """
        at = raw.rfind(_WORKLOAD_KEY)
        if at < 0:
            return None, ""
        text = raw[at + len(_WORKLOAD_KEY):-2]
        known = self._workloads.get(text)
        if known is not None:
            return known
        if type(value) is not dict or value.keys() != _WORKLOAD_KEYS or _dumps(value).encode() != text:
            return None, ""
        try:
            workload = Workload(value["kind"], value["name"], value["shape"])  # its validators, as the slow path
        except Exception:  # noqa: BLE001 - whatever it refuses, record_from_dict reports
            return None, ""
        self._workloads[text] = known = (workload, workload.key)
        return known

    def _device(self, raw: Any) -> Device | None:
        if type(raw) is not dict or raw.keys() != _DEVICE_KEYS:
            return None
        name, arch = raw["name"], raw["arch"]
        if type(name) is not str or (arch is not None and type(arch) is not str):
            return None
        counts = (raw["sm_count"], raw["smem_per_block_bytes"])
        sizes = (raw["mem_bandwidth_gbps"], raw["memory_gb"])
        for value in counts:
            if value is not None and type(value) is not int:  # the slow path refuses a float: let it say so
                return None
        for value in sizes:
            if value is not None and type(value) not in _NUMBER:
                return None
        # Strings, ints, and floats where float() is taken: equal keys structure to equal devices.
        key = (name, arch, *counts, *sizes)
        device = self._devices.get(key)
        if device is None:
            try:
                device = converter.structure(raw, Device)  # the slow path's conversions and validators
            except Exception:  # noqa: BLE001 - whatever it refuses, record_from_dict reports
                return None
            self._devices[key] = device
        return device
