"""``Workload``: what is tuned, as a kind, a name and a shape.

amk's own decode workload has kind ``decode`` and a model shape as its shape (see :mod:`amk.decode`);
an imported Kernel Tuner kernel has kind ``kernel_tuner``, its kernel name, and
``{"problem_size": [...]}`` (numbers, or strings where the problem size is an expression). Any other kernel fits the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Union

import attrs

from amk.core.errors import ValidationError

ShapeValue = Union[int, float, str, bool, list]


def _check_text(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"Workload.{attribute.name} must be a non-empty string, got {value!r}.")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool))


def _to_shape(value: Any) -> dict[str, ShapeValue]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"Workload.shape must be a mapping of name -> value, got {value!r}.")
    shape: dict[str, ShapeValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"Workload.shape keys must be non-empty strings, got {key!r}.")
        if isinstance(item, (list, tuple)):
            # Kernel Tuner keeps a problem size as given: numbers, or strings (expressions over the tune
            # parameters such as "bx*64"), or both.
            if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in item):
                raise ValidationError(f"Workload.shape[{key!r}]={item!r} must be a list of numbers and strings.")
            item = list(item)
        elif not _is_scalar(item):
            raise ValidationError(
                f"Workload.shape[{key!r}]={item!r} must be a number, a string, a bool or a list of numbers "
                "and strings."
            )
        shape[key] = item
    return shape


@attrs.frozen
class Workload:
    """What is tuned; two workloads are the same when kind, name and shape are equal."""

    kind: str = attrs.field(validator=_check_text)
    name: str = attrs.field(validator=_check_text)
    shape: dict[str, ShapeValue] = attrs.field(factory=dict, converter=_to_shape, hash=False)

    @property
    def key(self) -> str:
        """A canonical string that identifies the workload (kind, name and shape)."""
        return json.dumps([self.kind, self.name, self.shape], sort_keys=True, separators=(",", ":"))
