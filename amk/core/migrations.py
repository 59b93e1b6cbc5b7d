"""Schema migrations: one dict -> dict upgrade per version step, never edited once released.

Version 0 is the original system's record (``../shared/data/amk_upstream``): no version field, the model
shape only in the model name or inside the schedule, ``pct_of_roofline`` stored as 100*latency/bound, the
latency kind only inside ``notes``, and ``bound_us`` 0.0 when unknown. Version 1 is amk's first schema.

To add version N+1: write ``_v{N}_to_v{N+1}``, add it to ``UPGRADES`` under N, bump ``SCHEMA_VERSION``.
The chain is checked to be contiguous when this module is imported. A step reads nothing that can change
after its release (no live registry, no function shared with the rest of amk): what it needs is frozen
beside it, so an old record upgrades to the same record, with the same id, whatever amk becomes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from amk.core.errors import RecordError, SchemaVersionError, ValidationError

SCHEMA_VERSION = 1

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]

# The original system's ScheduleConfig keys; anything else found in its "schedule" is kept aside.
_V0_SCHEDULE_KEYS = frozenset({
    "tiling", "fusion_grouping", "sm_assignment", "pipelining_depth", "page_allocation",
    "threads_per_block", "smem_bytes_per_block", "kernel_knobs",
})
_V0_FIELDS = frozenset({
    "model", "gpu", "regime", "correctness", "latency_us", "bound_us", "pct_of_roofline", "schedule",
    "ir_version", "abi_version", "notes", "ts", "model_shape",
})
# -- frozen for the v0 -> v1 step (as amk 0.1 knew them; never edit) ------------------------------------
_V0_SHAPE_FIELDS = ("hidden", "n_layers", "n_heads", "n_kv_heads", "head_dim", "intermediate", "vocab")
# device name -> (arch, SMs, memory bandwidth GB/s, max shared memory per block, memory GB)
_V1_DEVICES: dict[str, tuple[str, int, float, int, float]] = {
    "h100": ("sm_90", 132, 3350.0, 232_448, 80.0), "h200": ("sm_90", 132, 4800.0, 232_448, 141.0),
    "a100": ("sm_80", 108, 1555.0, 166_912, 40.0), "l4": ("sm_89", 58, 300.0, 101_376, 24.0),
    "l40s": ("sm_89", 142, 864.0, 101_376, 48.0), "a10g": ("sm_86", 80, 600.0, 101_376, 24.0),
    "t4": ("sm_75", 40, 320.0, 65_536, 16.0), "v100": ("sm_70", 80, 900.0, 98_304, 32.0),
    "rtx5090": ("sm_120", 170, 1792.0, 101_376, 32.0), "rtx4090": ("sm_89", 128, 1008.0, 101_376, 24.0),
    "a6000": ("sm_86", 84, 768.0, 101_376, 48.0), "a4000": ("sm_86", 48, 448.0, 101_376, 16.0),
}
_V1_ALIASES = {name: name for name in _V1_DEVICES} | {
    "5090": "rtx5090", "4090": "rtx4090", "rtxa6000": "a6000", "rtxa4000": "a4000",
}
_V1_VENDOR_WORDS = frozenset({"nvidia", "geforce", "tesla", "quadro", "corporation"})
_V1_VARIANT_WORD = re.compile(r"^(\d+gb|hbm\d?e?|pcie|sxm\d?|nvl|gddr\d+x?|\d+g)$")


def _v1_device(raw: str) -> dict[str, Any]:
    """An original record's ``gpu`` string as amk 0.1 named and specified it."""
    words = [w for w in re.split(r"[^a-z0-9]+", raw.lower()) if w and w not in _V1_VENDOR_WORDS]
    chip = [w for w in words if not _V1_VARIANT_WORD.match(w)] or words
    if not chip:
        raise ValidationError(f"'gpu' {raw!r} names no device")
    candidates = ["".join(chip), *(a + b for a, b in zip(chip, chip[1:])), *chip]
    name = next((_V1_ALIASES[c] for c in candidates if c in _V1_ALIASES), "-".join(chip))
    arch, sms, bandwidth, smem, memory = _V1_DEVICES.get(name, (None, None, None, None, None))
    return {"name": name, "arch": arch, "sm_count": sms, "mem_bandwidth_gbps": bandwidth,
            "smem_per_block_bytes": smem, "memory_gb": memory}


_NAME_HINTS = (
    ("hidden", re.compile(r"(?<![A-Za-z0-9])(\d+)h(?![A-Za-z0-9])"), 1),
    ("n_layers", re.compile(r"(?<![A-Za-z0-9])(\d+)L(?![A-Za-z0-9])"), 1),
    ("vocab", re.compile(r"(?<![A-Za-z0-9])(\d+)k-vocab(?![A-Za-z0-9])"), 1000),
)


def _v0_shape(rec: dict[str, Any], schedule: dict[str, Any]) -> tuple[dict[str, int], str]:
    """The model shape of an original record and where it came from (schedule, model_shape, name, none)."""
    for source, holder in (("schedule", schedule), ("model_shape", rec.get("model_shape"))):
        if isinstance(holder, dict) and any(k in holder for k in _V0_SHAPE_FIELDS):
            try:
                return {k: int(holder.get(k) or 0) for k in _V0_SHAPE_FIELDS}, source
            except (TypeError, ValueError):
                raise ValidationError(f"the model shape in '{source}' holds a non-integer value") from None
    shape = {k: 0 for k in _V0_SHAPE_FIELDS}
    name = str(rec.get("model", ""))
    found = False
    for field, pattern, scale in _NAME_HINTS:
        match = pattern.search(name)
        if match:
            shape[field] = int(match.group(1)) * scale
            found = True
    return shape, ("model_name" if found else "none")


def _v0_kind(notes: str) -> tuple[str, str]:
    """The latency kind an original record's notes declare, and how it was read."""
    lowered = notes.lower()
    marker = re.search(r"kind=([a-z_-]+)", lowered)
    if marker:
        declared = marker.group(1)
        if declared.startswith("measured"):
            return "measured", f"notes say kind={declared}"
        if declared.startswith("predicted"):
            return "predicted", f"notes say kind={declared}"
    if "cost-model" in lowered or "not_run" in lowered:
        return "predicted", "notes name the cost model"
    if "measured" in lowered:
        return "measured", "notes say measured"
    return "predicted", "no kind in notes; assumed predicted so it never trains as measured"


def _v0_to_v1(rec: dict[str, Any]) -> dict[str, Any]:
    """The original system's record -> amk schema 1."""
    for required in ("model", "gpu", "correctness", "schedule"):
        if required not in rec:
            raise ValidationError(f"the original-format record has no {required!r} field")
    schedule = rec["schedule"]
    if not isinstance(schedule, dict):
        raise ValidationError(f"'schedule' must be an object, got {schedule!r}")
    shape, shape_source = _v0_shape(rec, schedule)
    notes = str(rec.get("notes") or "")
    kind, kind_source = _v0_kind(notes)

    latency = rec.get("latency_us")
    bound = rec.get("bound_us")
    ts = rec.get("ts")
    extra: dict[str, Any] = {
        "shape_source": shape_source,
        "kind_source": kind_source,
        "model_device_string": rec["gpu"],
    }
    for key in ("regime", "ir_version", "abi_version"):
        if key in rec:
            extra[key] = rec[key]
    if isinstance(ts, str):  # an ISO time: kept as written (a record's timestamp is seconds since the epoch)
        extra["ts"], ts = ts, None
    if "pct_of_roofline" in rec:
        # Stored by the original as 100*latency/bound, the inverse of its documentation; kept verbatim.
        extra["upstream_pct_of_roofline"] = rec["pct_of_roofline"]
    schedule_extras = {k: v for k, v in schedule.items() if k not in _V0_SCHEDULE_KEYS}
    if schedule_extras:
        extra["schedule_extras"] = schedule_extras
    unknown_fields = {k: v for k, v in rec.items() if k not in _V0_FIELDS}
    if unknown_fields:
        extra["unknown_fields"] = unknown_fields
    if rec.get("bound_us") in (0, 0.0):
        extra["bound_us_unknown"] = True

    return {
        "schema_version": 1,
        "workload": {"kind": "decode", "name": str(rec["model"]), "shape": shape},
        "device": _v1_device(str(rec["gpu"])),
        "config": {k: v for k, v in schedule.items() if k in _V0_SCHEDULE_KEYS},
        "measurement": {
            "verdict": rec["correctness"],
            "kind": kind,
            "latency_us": latency,
            "spread_us": None,
            "samples": None,
            "bound_us": bound if bound else None,
            "reason": None,
        },
        "provenance": {
            "backend": "amk-upstream",
            "backend_version": str(rec.get("ir_version") or ""),
            "timestamp": ts if ts else None,
            "notes": notes,
            "source": None,
            "extra": extra,
        },
    }


UPGRADES: dict[int, Upgrade] = {0: _v0_to_v1}


def _check_chain() -> None:
    if sorted(UPGRADES) != list(range(SCHEMA_VERSION)):
        raise RuntimeError(
            f"amk's migration chain is broken: steps from {sorted(UPGRADES)}, expected every version "
            f"from 0 to {SCHEMA_VERSION - 1}"
        )


_check_chain()


def detect_version(raw: dict[str, Any]) -> int:
    """The schema version of a raw record dict; raises RecordError when it is no format amk knows."""
    version = raw.get("schema_version")
    if version is None:
        if "model" in raw and "gpu" in raw:
            return 0
        raise RecordError("it has no schema_version and is not in the original system's format")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RecordError(f"schema_version {version!r} is not a non-negative integer")
    return version


def upgrade_to_current(raw: dict[str, Any], *, where: str = "record") -> dict[str, Any]:
    """Apply every upgrade step from the record's version to :data:`SCHEMA_VERSION`."""
    try:
        version = detect_version(raw)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}; fix or remove this record.") from None
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where}: schema_version {version} was written by a newer amk (this one reads up to "
            f"{SCHEMA_VERSION}); upgrade amk to read it."
        )
    while version < SCHEMA_VERSION:
        try:
            raw = UPGRADES[version](raw)
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            raise RecordError(
                f"{where}: cannot upgrade from schema {version}: {exc}; fix or remove this record."
            ) from None
        version += 1
    return raw
