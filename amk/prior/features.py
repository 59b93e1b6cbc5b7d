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
# A4000 <-> A6000 transferring where the A100 did not), so a different architecture weighs more than any
# spec difference within one; among the specs, bandwidth and SM count matter most and memory size barely.
# One weight per DEVICE_FEATURES column, chosen a priori, not fitted.
SPEC_WEIGHTS = np.asarray([0.5, 0.5, 0.25, 0.05, 0.0])
ARCH_MISMATCH = 4.0  # squared distance added when two architectures differ
ARCH_MAJOR_STEP = 0.25  # and per squared difference of their generations (sm_75 vs sm_90: 2 generations)
ARCH_FAMILY_STEP = 4.0  # and for architectures of different families (an NVIDIA sm_XX and an AMD gfxNNN)


def arch_parts(arch: str | None) -> tuple[str, float | None, str] | None:
    """(family, generation, normalised name) of an architecture string, or None when unknown.

    NVIDIA ``sm_86`` -> ("sm", 8, "sm_86") (compute capability 8.6: generation 8; ``sm_120`` -> 12);
    AMD LLVM targets ``gfx90a`` -> ("gfx", 9, "gfx90a"), ``gfx1030`` -> ("gfx", 10, ...) (the ISA's major
    version is all but its last two characters: gfx9 = GCN5/CDNA, gfx10 = RDNA1/2, gfx11 = RDNA3); any other
    string (Intel ``xe-hpc``, a vendor's own name) is its own family without a generation, so two such
    architectures compare only as equal or different. Feature suffixes (``gfx90a:sramecc+:xnack-``) are dropped.
    """
    if not isinstance(arch, str) or not arch.strip():
        return None
    name = arch.strip().lower().split(":")[0]
    if name.startswith("sm_") and name[3:].isdigit() and len(name) > 4:
        return "sm", float(name[3:-1]), name
    if name.startswith("gfx") and len(name) >= 6 and name[3:-2].isdigit():
        return "gfx", float(name[3:-2]), name
    family = name.rstrip("0123456789._-") or name
    return family.split("-")[0], None, name


def arch_penalty(target: str | None, others: Sequence[str | None]) -> np.ndarray:
    """Squared architecture distance of each of ``others`` to ``target``: 0 for the same architecture,
    ARCH_MISMATCH (+ ARCH_MAJOR_STEP per squared generation step within a family, + ARCH_FAMILY_STEP across
    families) otherwise; NaN where either architecture is unknown. Generic over ``Device.arch`` strings."""
    mine = arch_parts(target)
    out = np.full(len(others), np.nan)
    if mine is None:
        return out
    for i, other in enumerate(others):
        theirs = arch_parts(other)
        if theirs is None:
            continue
        if theirs[2] == mine[2]:
            out[i] = 0.0
        elif theirs[0] != mine[0]:
            out[i] = ARCH_MISMATCH + ARCH_FAMILY_STEP
        elif theirs[1] is not None and mine[1] is not None:
            out[i] = ARCH_MISMATCH + ARCH_MAJOR_STEP * (theirs[1] - mine[1]) ** 2
        else:
            out[i] = ARCH_MISMATCH
    return out


def spec_distance(target: np.ndarray, specs: np.ndarray, arch: np.ndarray | None = None) -> np.ndarray:
    """Distance of each row of ``specs`` to ``target`` (rows of :func:`device_spec_rows`, NaN = unknown).

    ``arch`` is each row's squared architecture distance (:func:`arch_penalty`, NaN = unknown); without it,
    it is read from the compute-capability column (NVIDIA only: rows from a featurizer carry no arch
    string), a different one adding ARCH_MISMATCH plus ARCH_MAJOR_STEP per squared major-version step.
    On top comes the SPEC_WEIGHTS-weighted mean squared difference of the log2 specs known on both sides.
    inf where nothing (neither specs nor architecture) is known on both sides.
    """
    target = np.asarray(target, dtype=np.float64)
    specs = np.asarray(specs, dtype=np.float64).reshape(-1, len(DEVICE_FEATURES))
    known = ~np.isnan(specs) & ~np.isnan(target)[None, :]
    diff = np.where(known, specs - target[None, :], 0.0)
    weights = np.where(known, SPEC_WEIGHTS[None, :], 0.0)
    wsum = weights.sum(axis=1)
    spec_part = (weights * diff ** 2).sum(axis=1) / np.where(wsum > 0, wsum, 1.0)
    if arch is None:
        cc = DEVICE_FEATURES.index("device.compute_capability")
        major_step = np.where(known[:, cc], np.floor(np.nan_to_num(specs[:, cc])) - np.floor(np.nan_to_num(target[cc])),
                              0.0)
        arch = np.where(known[:, cc], np.where(np.abs(diff[:, cc]) > 1e-9, ARCH_MISMATCH + ARCH_MAJOR_STEP * major_step ** 2,
                                               0.0), np.nan)
    arch = np.asarray(arch, dtype=np.float64)
    anything = (wsum > 0) | ~np.isnan(arch)
    return np.where(anything, np.sqrt(spec_part + np.nan_to_num(arch)), np.inf)
