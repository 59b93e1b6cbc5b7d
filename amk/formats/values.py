"""How raw values of tuning files become record values: times, timestamps, problem sizes, kept fields.

Shared by the readers so every format treats a NaN, a naive timestamp or a ``4096.0`` the same way.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from amk.core.records import Record, Verdict
from amk.core.store import CorpusProblem
from amk.formats import ImportItem, ImportNote


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def median_and_iqr_us(samples: Iterable[float], scale_to_us: float) -> tuple[float, float]:
    """Median and interquartile range (``statistics.quantiles``, n=4, exclusive method) of ``samples``,
    in microseconds; the IQR is 0 below 4 samples."""
    us = sorted(float(t) * scale_to_us for t in samples)
    median = statistics.median(us)
    if len(us) < 4:
        return median, 0.0
    q1, _, q3 = statistics.quantiles(us, n=4)
    return median, max(0.0, q3 - q1)


def parse_timestamp(value: Any) -> tuple[float | None, bool]:
    """(seconds since the epoch, readable) of a timestamp field: an ISO 8601 string (``Z`` or an offset;
    **without an offset it is read as UTC**, whatever the machine's time zone), or a number of seconds.
    Absent (None) is (None, True); anything else is (None, False)."""
    if value is None:
        return None, True
    if is_finite_number(value):
        return float(value), True
    if not isinstance(value, str):
        return None, False
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp(), True


def problem_size(value: Any) -> Any:
    """A problem size kept as given, with integral floats as ints (``[4096.0, 4096.0]`` is ``[4096, 4096]``,
    one workload with ``[4096, 4096]``); strings stay strings; a nested value becomes its JSON text."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, float, str)) and not isinstance(value, bool) and \
            (not isinstance(value, float) or math.isfinite(value)):
        return value
    if isinstance(value, (list, tuple)):
        items = [problem_size(v) for v in value]
        if all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in items):
            return items
    return json.dumps(value, sort_keys=True, allow_nan=True)


def all_finite_positive(samples: list[Any]) -> bool:
    """True when every sample is an int or float (not a bool), finite and > 0 (fast: C loops)."""
    return {type(t) for t in samples} <= {int, float} and min(samples) > 0 and all(map(math.isfinite, samples))


def without_nonfinite(value: Any, path: str, found: list[str]) -> Any:
    """``value`` with every NaN or infinite number replaced by None (records are strict JSON); the dotted
    path of each one replaced is appended to ``found``."""
    if isinstance(value, float) and not math.isfinite(value):
        found.append(path)
        return None
    if isinstance(value, Mapping):
        return {k: without_nonfinite(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, list):
        try:
            if all(map(math.isfinite, value)):  # a list of numbers, checked at C speed
                return value
        except (TypeError, OverflowError):
            pass  # not only numbers (or an integer too large for a float: checked one by one below)
        return [without_nonfinite(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def has_replacement(value: Any) -> bool:
    """True when a string in ``value`` holds U+FFFD (a byte that was not UTF-8 when the file was read)."""
    if isinstance(value, str):
        return "\ufffd" in value
    if isinstance(value, Mapping):
        return any(has_replacement(k) or has_replacement(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_replacement(v) for v in value)
    return False


class Tally:
    """Facts about many entries of one file, said once each with a count and a few examples."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._seen: dict[str, list[str]] = {}

    def add(self, message: str, example: str) -> None:
        self._seen.setdefault(message, []).append(example)

    def notes(self) -> Iterable[ImportItem]:
        for message, examples in self._seen.items():
            shown = ", ".join(examples[:3]) + (f" and {len(examples) - 3} more" if len(examples) > 3 else "")
            count = f"{len(examples)} entries" if len(examples) != 1 else "1 entry"
            yield ImportItem(note=ImportNote(self.where, f"{message} in {count} ({shown})"))


def representative(samples: Sequence[Record]) -> Record:
    """The record that stands for a config recorded several times (``samples`` in append order): its fastest
    PASS, else its latest record. The stores' best-of (amk/core/store.py: each sample is already the median of
    its repeats), so a failed build before or after a pass never hides the config."""
    passed = [r for r in samples if r.measurement.verdict is Verdict.PASS and r.measurement.latency_us is not None]
    return min(passed, key=lambda r: r.measurement.latency_us) if passed else samples[-1]


def kept_extra(record: Record, part: str) -> dict[str, Any]:
    """A copy of ``provenance.extra[part]`` (what an import kept of its file: ``entry``, ``header``, ``t4``), or {}."""
    extra = record.provenance.extra
    kept = extra.get(part) if isinstance(extra, Mapping) else None
    return dict(kept) if isinstance(kept, Mapping) else {}


def problem(where: str, reason: str) -> ImportItem:
    return ImportItem(problem=CorpusProblem(where, reason))


def note(where: str, message: str) -> ImportItem:
    return ImportItem(note=ImportNote(where, message))
