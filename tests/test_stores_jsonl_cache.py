"""The jsonl store's columns cache: reads parse only appended lines, and a changed file is never misread."""

from __future__ import annotations

import os

from store_helpers import column_rows, make_record

from amk.core.columns import CorpusColumns
from amk.core.records import record_to_json
from amk.stores.jsonl import JsonlStore
from amk.stores.jsonl_columns import cache_path


class CountingJsonlStore(JsonlStore):
    """The real store, counting the lines it parses."""

    parsed = 0

    def _read_lines(self, f, start=0, first_lineno=1, **kw):
        for item in super()._read_lines(f, start, first_lineno, **kw):
            self.parsed += 1
            yield item


def open_counting(path) -> CountingJsonlStore:
    return CountingJsonlStore(CountingJsonlStore.Options(path=str(path)))


def expected_rows(indices) -> list[tuple]:
    return column_rows(CorpusColumns.from_records(make_record(i) for i in indices))


def test_a_second_read_parses_only_the_lines_appended_since(tmp_path):
    path = tmp_path / "c.jsonl"
    store = open_counting(path)
    store.append([make_record(i) for i in range(50)])
    assert column_rows(store.columns()) == expected_rows(range(50))
    assert store.parsed == 50 and cache_path(path).is_file()

    store.append([make_record(i) for i in range(50, 60)])
    fresh = open_counting(path)
    assert column_rows(fresh.columns()) == expected_rows(range(60))
    assert fresh.parsed == 10
    assert fresh.count() == 60 and fresh.parsed == 10


def test_problems_found_before_stay_reported_from_the_cache(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(record_to_json(make_record(0)) + "\n{broken\n" + record_to_json(make_record(1)) + "\n")
    first = open_counting(path)
    first.columns()
    second = open_counting(path)
    assert len(second.columns()) == 2 and second.parsed == 0
    assert [p.where for p in second.problems()] == [f"{path}:2"]
    assert second.stats().problems == 1


def test_a_rewritten_file_is_read_again_in_full(tmp_path):
    path = tmp_path / "c.jsonl"
    store = open_counting(path)
    store.append([make_record(i) for i in range(20)])
    store.columns()
    replacement = tmp_path / "new.jsonl"
    replacement.write_text("".join(record_to_json(make_record(i)) + "\n" for i in range(100, 130)))
    os.replace(replacement, path)  # what migrate does
    fresh = open_counting(path)
    assert column_rows(fresh.columns()) == expected_rows(range(100, 130))
    assert fresh.parsed == 30


def test_a_file_changed_in_place_before_the_cached_offset_is_read_again(tmp_path):
    path = tmp_path / "c.jsonl"
    store = open_counting(path)
    store.append([make_record(i) for i in range(20)])
    store.columns()
    lines = path.read_text().splitlines(keepends=True)
    with path.open("r+") as f:  # same inode, same head, different bytes near the end
        f.seek(0)
        f.write("".join(lines[:19]) + record_to_json(make_record(77)) + "\n")
    fresh = open_counting(path)
    assert column_rows(fresh.columns()) == expected_rows([*range(19), 77])


def test_a_truncated_file_is_read_again_in_full(tmp_path):
    path = tmp_path / "c.jsonl"
    store = open_counting(path)
    store.append([make_record(i) for i in range(20)])
    store.columns()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:5]))
    assert column_rows(open_counting(path).columns()) == expected_rows(range(5))


def test_a_torn_last_line_is_never_cached(tmp_path):
    path = tmp_path / "c.jsonl"
    store = open_counting(path)
    store.append([make_record(i) for i in range(3)])
    with path.open("ab") as f:
        f.write(record_to_json(make_record(3)).encode()[:40])
    assert len(store.columns()) == 3
    assert "incomplete last line" in store.problems()[0].reason
    store.append([make_record(4)])
    fresh = open_counting(path)
    assert column_rows(fresh.columns()) == expected_rows([0, 1, 2, 4])


def test_an_unreadable_cache_is_ignored_and_replaced(tmp_path):
    path = tmp_path / "c.jsonl"
    store = open_counting(path)
    store.append([make_record(i) for i in range(5)])
    cache_path(path).write_bytes(b"not a numpy file")
    assert column_rows(store.columns()) == expected_rows(range(5))
    again = open_counting(path)
    assert column_rows(again.columns()) == expected_rows(range(5))
    assert again.parsed == 0  # the replaced cache is used


def test_the_cache_can_be_turned_off(tmp_path):
    path = tmp_path / "c.jsonl"
    store = JsonlStore(JsonlStore.Options(path=str(path), columns_cache=False))
    store.append([make_record(i) for i in range(5)])
    assert len(store.columns()) == 5
    assert not cache_path(path).exists()
