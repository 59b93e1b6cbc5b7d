"""Kernel Tuner's values (numpy scalars, tuples, error markers, NaN) as plain JSON data for records."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars as numbers, tuples as lists, NaN / inf as None, other
    objects (Kernel Tuner's error markers, a ``str`` subclass) as their text."""
    if value is None or isinstance(value, bool) or type(value) is str:
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    return str(value)
