"""Numeric views shared by the featurizers and the prior: flattened knob/shape mappings, device specs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from amk.core.devices import Device

DEVICE_FEATURES: tuple[str, ...] = (
    "device.log2_sm_count", "device.log2_mem_bandwidth_gbps", "device.log2_smem_per_block_kib",
    "device.log2_memory_gb", "device.compute_capability",
)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys; a list of numbers -> one key per position; other lists -> their length."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            if all(is_number(v) for v in value):
                for i, v in enumerate(value):
                    flat[f"{name}.{i}"] = v
            else:
                flat[f"{name}.len"] = len(value)
        else:
            flat[name] = value
    return flat


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def device_spec_rows(devices: Sequence[Device]) -> np.ndarray:
    """(n, 5) spec features of each device, NaN where a spec is unknown."""

    def lg(x: float | None, scale: float = 1.0) -> float:
        return math.log2(x / scale) if x else math.nan

    rows = [
        (lg(d.sm_count), lg(d.mem_bandwidth_gbps), lg(d.smem_per_block_bytes, 1024.0), lg(d.memory_gb),
         (d.compute_capability / 10.0) if d.compute_capability else math.nan)
        for d in devices
    ]
    return np.asarray(rows, dtype=np.float64).reshape(len(devices), len(DEVICE_FEATURES))
