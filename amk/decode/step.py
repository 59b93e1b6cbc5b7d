"""amk's own workload, one LLM decode step: per layer, the weight GEMVs and the bytes they must move.

Batch-1 decode is bound by memory bandwidth: every weight is read once per token, so the physical floor
of a step is its weight bytes over the device's bandwidth. The roofline backend predicts from this and
the measured backends build their GEMVs from ``layer_projections``.
"""

from __future__ import annotations

import attrs

from amk.core.errors import ValidationError
from amk.core.workload import Workload
from amk.decode.shapes import ModelShape
from amk.decode.workload import DECODE_KIND, model_shape

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2}
DEFAULT_DTYPE = "bf16"


@attrs.frozen
class Projection:
    """One weight matrix-vector product: ``y[n] = W[n, k] @ x[k]``."""

    name: str
    n: int  # output features (rows of W)
    k: int  # input features (columns of W)

    def weight_bytes(self, dtype: str) -> int:
        return self.n * self.k * dtype_bytes(dtype)


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValidationError(f"dtype {dtype!r} is not one of {list(DTYPE_BYTES)}.") from None


def head_dim_of(shape: ModelShape) -> int:
    """``head_dim``, or hidden / n_heads when the shape leaves it unknown."""
    if shape.head_dim:
        return shape.head_dim
    if shape.hidden and shape.n_heads:
        return shape.hidden // shape.n_heads
    return 0


# What sizing a decode step needs: one layer's GEMVs need the first three, the step the layer count
# (n_kv_heads defaults to n_heads, head_dim to hidden / n_heads; vocab is not part of the step).
LAYER_FIELDS: tuple[str, ...] = ("hidden", "n_heads", "intermediate")
STEP_FIELDS: tuple[str, ...] = (*LAYER_FIELDS, "n_layers")


def missing_fields(shape: ModelShape, fields: tuple[str, ...] = STEP_FIELDS) -> list[str]:
    """The ``fields`` the shape leaves unknown (0), all of them, in ``fields`` order."""
    return [f for f in fields if not getattr(shape, f)]


def _require(shape: ModelShape, fields: tuple[str, ...]) -> None:
    missing = missing_fields(shape, fields)
    if missing:
        raise ValidationError(
            f"the model shape lacks {', '.join(missing)} (given: {shape.to_dict()}), needed to size a decode "
            f"step; give {'it' if len(missing) == 1 else 'them'} in --shape, e.g. "
            f"{','.join(f'{f}=...' for f in missing)}."
        )


def layer_projections(shape: ModelShape) -> list[Projection]:
    """One decoder layer's GEMVs: fused q/k/v, o, fused gate/up, down.

    Raises ValidationError naming every field the layer needs that the shape lacks."""
    _require(shape, LAYER_FIELDS)
    head_dim = head_dim_of(shape)
    n_kv = shape.n_kv_heads or shape.n_heads
    return [
        Projection("qkv", (shape.n_heads + 2 * n_kv) * head_dim, shape.hidden),
        Projection("o", shape.hidden, shape.n_heads * head_dim),
        Projection("gate_up", 2 * shape.intermediate, shape.hidden),
        Projection("down", shape.hidden, shape.intermediate),
    ]


def decode_dtype(workload: Workload) -> str:
    dtype = workload.shape.get("dtype", DEFAULT_DTYPE)
    dtype_bytes(str(dtype))
    return str(dtype)


def decode_weight_bytes(workload: Workload, layers: int | None = None) -> int:
    """Weight bytes one decode step reads: ``layers`` (default: the shape's n_layers) times one layer's."""
    if workload.kind != DECODE_KIND:
        raise ValidationError(f"workload {workload.name!r} is a {workload.kind!r} workload, not a decode step.")
    shape = model_shape(workload)
    _require(shape, LAYER_FIELDS if layers else STEP_FIELDS)
    n_layers = layers if layers is not None else shape.n_layers
    dtype = decode_dtype(workload)
    return n_layers * sum(p.weight_bytes(dtype) for p in layer_projections(shape))


def decode_floor_us(workload: Workload, mem_bandwidth_gbps: float, layers: int | None = None) -> float:
    """The physical floor of one decode step: weight bytes / memory bandwidth, in microseconds."""
    if not mem_bandwidth_gbps or mem_bandwidth_gbps <= 0:
        raise ValidationError(f"memory bandwidth {mem_bandwidth_gbps!r} GB/s must be positive.")
    return decode_weight_bytes(workload, layers) / (mem_bandwidth_gbps * 1e9) * 1e6
