"""Corpus records: the frozen, versioned unit amk stores, and the one way to read and write them.

Reading always upgrades (``amk.core.migrations``) to :data:`SCHEMA_VERSION` and structures once with
cattrs; writing always writes the current version. A record from a newer amk is refused, never dropped.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.v import format_exception

from amk.core.devices import Device
from amk.core.errors import AmkError, RecordError, ValidationError
from amk.core.inputs import check_text, check_value, strict_converter
from amk.core.migrations import SCHEMA_VERSION, upgrade_to_current
from amk.core.workload import Workload

# Microseconds per unit of a latency: amk keeps every latency in microseconds (``latency_us``).
LATENCY_UNITS: dict[str, float] = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}


def latency_to_us(value: float, unit: str) -> float:
    """``value`` in ``unit`` (ns, us, ms, s) as microseconds; ValidationError naming the units otherwise."""
    factor = LATENCY_UNITS.get(unit.strip().lower()) if isinstance(unit, str) else None
    if factor is None:
        raise ValidationError(f"the latency unit {unit!r} is not one of ns, us, ms, s.")
    return value * factor


class Verdict(str, enum.Enum):
    """The correctness gate's verdict on one measured config."""

    PASS = "PASS"  # correct and timed
    FAIL = "FAIL"  # ran, wrong results (or failed to compile/run in imported data: see ``reason``)
    REJECTED = "REJECTED"  # refused before or after running (invalid config, latency below the floor)
    TIMEOUT = "TIMEOUT"  # did not finish within the backend's limit
    CRASH = "CRASH"  # the backend raised or the process died


class MeasurementKind(str, enum.Enum):
    """Where a latency came from; only ``measured`` trains the prior by default."""

    MEASURED = "measured"  # timed on hardware
    PREDICTED = "predicted"  # from a model (roofline, cost model): never mixed silently with measured
    REPLAYED = "replayed"  # looked up in recorded data by the replay backend


def _optional_non_negative(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name}={value!r} must be a finite number >= 0 or null")


def _optional_positive(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name}={value!r} must be a finite number > 0 or null")


def _optional_count(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name}={value!r} must be >= 1 or null")


@attrs.frozen(kw_only=True)
class Measurement:
    """One config's outcome: the verdict, and for a PASS the median latency of its samples."""

    verdict: Verdict
    kind: MeasurementKind
    latency_us: float | None = attrs.field(default=None, validator=_optional_positive)
    spread_us: float | None = attrs.field(default=None, validator=_optional_non_negative)  # IQR of samples
    samples: int | None = attrs.field(default=None, validator=_optional_count)
    bound_us: float | None = attrs.field(default=None, validator=_optional_positive)  # physical floor
    reason: str | None = None  # why a non-PASS verdict was given

    def __attrs_post_init__(self) -> None:
        if self.verdict is Verdict.PASS and self.latency_us is None:
            raise ValueError("a PASS measurement needs latency_us")

    @property
    def fraction_of_floor(self) -> float | None:
        """bound_us / latency_us in (0, 1]: 1.0 means the config runs at the physical floor."""
        if self.bound_us is None or self.latency_us is None:
            return None
        return self.bound_us / self.latency_us


@attrs.frozen(kw_only=True)
class Provenance:
    """Who produced a record and when; ``extra`` keeps what has no field of its own."""

    backend: str
    backend_version: str = ""
    timestamp: float | None = None  # seconds since the epoch; None when unknown
    notes: str = ""
    source: str | None = None  # e.g. the file and line a record was imported from
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Record:
    """One measured point: workload, device, config, measurement, provenance. Immutable."""

    schema_version: int = SCHEMA_VERSION
    workload: Workload
    device: Device
    config: dict[str, Any]
    measurement: Measurement
    provenance: Provenance

    def __attrs_post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not the current {SCHEMA_VERSION}; "
                "read records through record_from_dict so they are upgraded"
            )
        if not all(isinstance(k, str) for k in self.config):
            raise ValueError("config keys must be strings")
        # The input limits (amk.core.inputs), so every store can hold it; Workload and Device check their own.
        m, p = self.measurement, self.provenance
        check_value(self.config, ("config",))
        check_value(p.extra, ("provenance", "extra"))
        for what, text in (("measurement.reason", m.reason), ("provenance.backend", p.backend),
                           ("provenance.backend_version", p.backend_version), ("provenance.notes", p.notes),
                           ("provenance.source", p.source)):
            if text is not None:
                check_text(text, f"$.{what}")


def _make_converter() -> cattrs.Converter:
    # Strict (a latency of "12", a count of 2.5 or true is refused); Workload checks its own shape mapping.
    converter = strict_converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(Workload, _structure_workload)
    converter.register_unstructure_hook(Workload, lambda w: {"kind": w.kind, "name": w.name, "shape": dict(w.shape)})
    return converter


def _structure_workload(value: Any, _type: type) -> Workload:
    if not isinstance(value, Mapping):
        raise ValueError(f"workload must be an object, got {value!r}")
    extra = sorted(set(value) - {"kind", "name", "shape"})
    if extra:
        raise ForbiddenExtraKeysError("", Workload, set(extra))
    return Workload(value.get("kind"), value.get("name"), value.get("shape", {}))


converter = _make_converter()


def _format_leaf(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, (AmkError, ValueError)) and str(exc) and not isinstance(exc, ForbiddenExtraKeysError):
        # Our validators' messages already name the value and the rule.
        return str(exc)
    return format_exception(exc, type_)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ClassValidationError, ForbiddenExtraKeysError)):
        return "; ".join(cattrs.transform_error(exc, path="$", format_exception=_format_leaf))
    return str(exc)


def record_from_dict(raw: Any, *, where: str = "record") -> Record:
    """Upgrade ``raw`` to the current schema and structure it; errors name ``where`` it came from."""
    if not isinstance(raw, Mapping):
        raise RecordError(f"{where}: a record must be a JSON object, got {type(raw).__name__}; fix or remove it.")
    try:
        check_value(raw)  # before any step walks it: no nesting, integer or string over the limits
    except ValidationError as exc:
        raise RecordError(f"{where}: {exc}; fix or remove this record.") from None
    current = upgrade_to_current(dict(raw), where=where)
    try:
        return converter.structure(current, Record)
    except (ClassValidationError, ForbiddenExtraKeysError, ValueError, TypeError, AmkError) as exc:
        raise RecordError(f"{where}: {_describe(exc)}; fix or remove this record.") from None


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSON-ready dict of a record, in the current schema."""
    return converter.unstructure(record)


def record_to_json(record: Record, data: dict[str, Any] | None = None) -> str:
    """One line of canonical JSON (sorted keys, no spaces): the form stores write and hash."""
    return json.dumps(record_to_dict(record) if data is None else data, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


def record_id(record: Record, data: dict[str, Any] | None = None) -> str:
    """A content hash that identifies a record exactly (same content, same id); ``data``: the dict hashed in
    place of ``record_to_dict(record)`` (``content_id``'s, its source cleared)."""
    return hashlib.sha256(record_to_json(record, data).encode()).hexdigest()[:20]


def content_id(record: Record) -> str:
    """The ``record_id`` of the record without ``provenance.source`` (where it was read from): what
    ``amk corpus import`` compares to skip what the store already holds, so the same content read by a
    relative or an absolute path, from a copy on another machine or from a renamed file is one import.
    Stored records keep their own ``record_id`` (the source is part of it, as it always was)."""
    data = record_to_dict(record)
    data["provenance"]["source"] = None  # as record_id of the record with source None, without rebuilding it
    return record_id(record, data)
