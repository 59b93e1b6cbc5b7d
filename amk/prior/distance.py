"""Which past workloads and devices transfer to a target: workload and device distances.

A workload's knowledge transfers to another of the same kind (decode: by model shape whatever the names;
other kinds: only within the same kernel, by the log2 distance of their shapes' numbers); a device's by
architecture first, then specs (:func:`amk.prior.features.spec_distance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from amk.core.devices import Device, resolve_device
from amk.core.errors import ValidationError
from amk.core.workload import Workload
from amk.decode.workload import DECODE_KIND, model_shape
from amk.prior.features import arch_penalty, device_spec_rows, flatten, spec_distance


def _numeric_shape(workload: Workload) -> dict[str, float]:
    flat = flatten(workload.shape)
    numeric = {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    others = {k: v for k, v in flat.items() if k not in numeric}
    return {**numeric, **{f"{k}={v}": 1.0 for k, v in others.items()}}


def workload_distance(target: Workload, other: Workload) -> float:
    """How far ``other``'s tuning knowledge is from ``target``: 0 = same shape, inf = does not transfer.

    Decode workloads compare by ModelShape distance whatever their names (shapes come from records);
    other kinds transfer only within the same kernel (its knobs are the kernel's own), by the Euclidean
    distance of the log2 of their shape's numbers.
    """
    if target.kind != other.kind:
        return math.inf
    if target.kind == DECODE_KIND:
        try:
            d = model_shape(target).distance(model_shape(other))
        except ValidationError:
            return math.inf
        return d + (0.0 if target.shape.get("dtype") == other.shape.get("dtype") else 1.0)
    if target.name != other.name:
        return math.inf
    a, b = _numeric_shape(target), _numeric_shape(other)
    if set(a) != set(b):
        return math.inf
    return math.sqrt(sum((math.log2(1.0 + abs(a[k])) - math.log2(1.0 + abs(b[k]))) ** 2 for k in a))


def device_distance(target: Device, others: Sequence[Device]) -> np.ndarray:
    """Distance of each of ``others`` to ``target``: architecture first, then specs; inf where neither the
    architecture nor a spec is known on both sides (see :func:`amk.prior.features.spec_distance`: any
    device of the target's architecture is nearer than any device of another one, and memory size barely
    counts). Architectures compare by their ``Device.arch`` strings, whatever the vendor
    (:func:`amk.prior.features.arch_penalty`: sm_XX, gfxNNN, or any other name as equal or not)."""
    others = list(others)
    return spec_distance(device_spec_rows([target])[0], device_spec_rows(others),
                         arch_penalty(target.arch, [d.arch for d in others]))


def as_device(device: Device | str) -> Device:
    return device if isinstance(device, Device) else resolve_device(device)
