"""Records for the store tests, and a check that two columns hold the same rows.

They are amk.testing's (what the store contract runs on), under the names these tests have always used.
"""

from __future__ import annotations

from amk.testing.samples import column_rows, sample_record, sample_record_on_unknown_device

make_record = sample_record
unknown_device_record = sample_record_on_unknown_device

__all__ = ["column_rows", "make_record", "unknown_device_record"]
