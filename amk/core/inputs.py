"""What amk accepts where input enters: JSON parsed within limits, values within limits, scalars of their type.

The limits, in one place (records, stores' readers, importers, candidates files, options): a record's JSON
is at most :data:`MAX_RECORD_BYTES`; lists and objects nest at most :data:`MAX_DEPTH` deep; an integer fits
a signed 64-bit integer (what SQLite, PostgreSQL and numpy hold); a float is finite; a string is valid
Unicode (no lone surrogate) without NUL (PostgreSQL text cannot hold it), keys too. A value over a limit
is an :class:`~amk.core.errors.InputLimitError` naming where in the value (``$.config.tile``) and the rule;
the caller adds the file and line, so one bad entry is one reported problem and its neighbours are read.
Python's own limits (4,300 digits, the recursion limit) become the same error, never a traceback.

``strict_converter`` structures config sections, state files and records without coercing a wrong type:
``"12"`` is not a number, ``true`` or ``10.7`` is not an integer, ``nan`` is not a number.
"""

from __future__ import annotations

import json
import math
from typing import Any

import cattrs

from amk.core.errors import InputLimitError

MAX_RECORD_BYTES = 1 << 20  # 1 MiB of JSON per record
MAX_DEPTH = 32  # nested lists and objects
MAX_INT = (1 << 63) - 1
MIN_INT = -(1 << 63)


def parse_json(data: str | bytes, *, max_bytes: int | None = MAX_RECORD_BYTES, max_int: int = MAX_INT) -> Any:
    """``json.loads`` of ``data`` within the limits; InputLimitError says what is wrong (never another error).

    ``max_bytes`` is the size limit (a record's by default; None for a whole file such as a tune state);
    ``max_int`` the largest integer magnitude (a random generator's state holds 128-bit integers).
    Python's JSON parser accepts ``NaN`` and ``Infinity``: they are refused here with every other
    non-finite number (see :func:`check_value`).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise InputLimitError(f"{len(data):,} bytes of JSON, over the limit of {max_bytes:,}")
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputLimitError(f"not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputLimitError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise InputLimitError(f"nested deeper than the limit of {MAX_DEPTH}") from None
    except ValueError as exc:  # an integer literal over Python's digit limit
        raise InputLimitError(f"not readable as JSON: {exc}") from None
    check_value(value, max_int=max_int)
    return value


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate ({text[exc.start]!r}), which is not valid Unicode"
    return None


def check_text(text: str, what: str = "value") -> None:
    """InputLimitError unless ``text`` is valid Unicode without NUL characters."""
    problem = _string_problem(text)
    if problem is not None:
        raise InputLimitError(f"{what} {problem}")


def _path(parts: tuple) -> str:
    shown = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts[:6])
    return shown + ("..." if len(parts) > 6 else "")


def check_value(value: Any, path: tuple = (), *, max_int: int = MAX_INT) -> None:
    """InputLimitError unless ``value`` (JSON-like data: dicts, lists, tuples, scalars) is within the limits.
    Iterative, so no nesting can exhaust Python's stack here."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):  # a str enum (Verdict) too
            problem = _string_problem(item)
            if problem is not None:
                raise InputLimitError(f"{_path(where)} {problem}")
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -max_int - 1 <= item <= max_int:
                digits = len(str(abs(item))) if item.bit_length() < 15_000 else "thousands of"
                rule = "the signed 64-bit range" if max_int == MAX_INT else f"+-{max_int:.3g}"
                raise InputLimitError(f"{_path(where)} is an integer of {digits} digits, outside {rule}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InputLimitError(f"{_path(where)} is {item!r}; numbers must be finite")
        elif not isinstance(item, (dict, list, tuple)):
            raise InputLimitError(f"{_path(where)} is a {type(item).__name__}, not a JSON value")
        elif len(where) >= MAX_DEPTH:
            raise InputLimitError(f"{_path(where)} is nested deeper than the limit of {MAX_DEPTH}")
        elif isinstance(item, dict):
            for key, sub in item.items():
                problem = "is not a string" if not isinstance(key, str) else _string_problem(key)
                if problem is not None:
                    raise InputLimitError(f"{_path(where)} has a key {key!r} that {problem}")
                stack.append((sub, (*where, key)))
        else:
            stack.extend((sub, (*where, i)) for i, sub in enumerate(item))


# Structuring without coercion. Each hook is registered for its type and so also receives that type's subclasses (a str enum such as
# Verdict, an IntEnum): the value is checked, then the subclass is made from it. A wrong type is a
# ValueError, not a TypeError: cattrs reports ValueErrors with the path of the value.


def _strict_int(value: Any, target: type) -> int:
    if type(value) is not int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError(f"{value!r} is not an integer")
    if not MIN_INT <= value <= MAX_INT:
        raise ValueError(f"{value!r} is outside the signed 64-bit range")
    return int(value) if target is int else target(value)


def _strict_float(value: Any, target: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")  # noqa: TRY004 - see above
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not a finite number")
    return out if target is float else target(out)


def _strict_str(value: Any, target: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")  # noqa: TRY004 - see above
    problem = _string_problem(value)
    if problem is not None:
        raise ValueError(f"the string {problem}")
    return str(value) if target is str else target(value)


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")  # noqa: TRY004 - see above
    return value


def strict_converter(**options: Any) -> cattrs.Converter:
    """A cattrs converter (``options`` as ``cattrs.Converter``'s) whose int, float, str and bool accept only
    values of that type (an int where a float is asked), finite and within the limits; anything else is a
    ValueError that names the value, which cattrs reports with its path."""
    converter = cattrs.Converter(**options)
    for kind, hook in ((int, _strict_int), (float, _strict_float), (str, _strict_str), (bool, _strict_bool)):
        converter.register_structure_hook(kind, hook)
    return converter
