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


# Device similarity: tuning knowledge transfers within an architecture (the tune loop measured the sm_86
# A4000 <-> A6000 transferring where the A100 did not), so a different compute capability weighs more
# than any spec difference within one; among the specs, bandwidth and SM count matter most and memory
# size barely. One weight per DEVICE_FEATURES column, chosen a priori, not fitted.
SPEC_WEIGHTS = np.asarray([0.5, 0.5, 0.25, 0.05, 0.0])
ARCH_MISMATCH = 4.0  # squared distance added when the compute capabilities differ
ARCH_MAJOR_STEP = 0.25  # and per squared difference of their major versions (sm_75 vs sm_90: 2 generations)


def spec_distance(target: np.ndarray, specs: np.ndarray) -> np.ndarray:
    """Distance of each row of ``specs`` to ``target`` (rows of :func:`device_spec_rows`, NaN = unknown).

    A different compute capability adds ARCH_MISMATCH (plus ARCH_MAJOR_STEP per squared major-version
    step) to the squared distance; on top comes the SPEC_WEIGHTS-weighted mean squared difference of the
    log2 specs known on both sides. inf where nothing is known on both sides.
    """
    target = np.asarray(target, dtype=np.float64)
    specs = np.asarray(specs, dtype=np.float64).reshape(-1, len(DEVICE_FEATURES))
    known = ~np.isnan(specs) & ~np.isnan(target)[None, :]
    diff = np.where(known, specs - target[None, :], 0.0)
    weights = np.where(known, SPEC_WEIGHTS[None, :], 0.0)
    wsum = weights.sum(axis=1)
    spec_part = (weights * diff ** 2).sum(axis=1) / np.where(wsum > 0, wsum, 1.0)
    cc = DEVICE_FEATURES.index("device.compute_capability")
    major_step = np.where(known[:, cc], np.floor(np.nan_to_num(specs[:, cc])) - np.floor(np.nan_to_num(target[cc])), 0.0)
    arch_part = np.where(known[:, cc] & (np.abs(diff[:, cc]) > 1e-9), ARCH_MISMATCH + ARCH_MAJOR_STEP * major_step ** 2,
                         0.0)
    return np.where(known.any(axis=1), np.sqrt(spec_part + arch_part), np.inf)
