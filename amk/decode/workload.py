"""amk's own decode workload as a :class:`~amk.core.workload.Workload`: kind ``decode``, a model shape."""

from __future__ import annotations

from amk.core.workload import ShapeValue, Workload
from amk.decode.shapes import SHAPE_FIELDS, ModelShape

DECODE_KIND = "decode"


def decode_workload(name: str, shape: ModelShape, **extra: ShapeValue) -> Workload:
    """The LLM decode workload of ``name`` with model ``shape`` (``extra`` e.g. ``dtype="bf16"``)."""
    return Workload(DECODE_KIND, name, {**shape.to_dict(), **extra})


def model_shape(workload: Workload) -> ModelShape:
    """The ModelShape of a decode workload (its shape's ModelShape fields; others ignored).

    Raises ValidationError when a field is not a non-negative integer.
    """
    return ModelShape.from_mapping({k: v for k, v in workload.shape.items() if k in SHAPE_FIELDS})
