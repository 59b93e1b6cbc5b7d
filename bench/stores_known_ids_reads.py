"""How much of a store ``known_ids`` and a multi-file import read: stored rows turned into records (sqlite)
and jsonl lines parsed, beside what a full read costs (every row or line), in one run.

    nice python bench/stores_known_ids_reads.py [--records 60]

Counts, not times: each figure is how many stored rows/lines were read to answer, so it does not depend on
the machine's load. The store holds N records; the cases are what an import asks:
  - no asked record can match (another device): 0 rows should be read;
  - the asked records share workload, device and config with k stored ones: only those k;
  - jsonl after appending 5 lines to a store already read once: only the 5 new lines;
  - an import of 3 files (20 records, 4 of them repeated) into the store: the store read once (jsonl) or
    only the repeated records' rows (sqlite).
(These were spies in the test suite; they measure cost, so they live here.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from click.testing import CliRunner  # noqa: E402
from store_helpers import make_record  # noqa: E402

import amk.cli  # noqa: E402
from amk.core.config import open_store  # noqa: E402
from amk.core.records import record_id, record_to_json  # noqa: E402
from amk.core.store import match_key  # noqa: E402
from amk.stores import sql  # noqa: E402
from amk.stores.jsonl import JsonlStore  # noqa: E402


def spy(owner, name: str, wrap) -> list[int]:
    seen: list[int] = []
    setattr(owner, name, wrap(getattr(owner, name), seen))
    return seen


def count_rows(original, seen):
    def counting(tables, row, where):
        seen.append(row[0])
        return original(tables, row, where)
    return counting


def count_lines(original, seen):
    def counting(self, f, start=0, first_lineno=1, **kw):
        for item in original(self, f, start, first_lineno, **kw):
            seen.append(item[0])
            yield item
    return counting


def distinct(i: int):
    record = make_record(i)
    return attrs.evolve(record, config={**record.config, "n": i})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=60)
    n = parser.parse_args().records
    rows = spy(sql, "read_record", count_rows)
    lines = spy(JsonlStore, "_read_lines", count_lines)
    stored = [make_record(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        url = f"sqlite:{tmp / 's.sqlite'}"
        with open_store(url) as store:
            store.append(stored)
            other = attrs.evolve(stored[0], device=attrs.evolve(stored[0].device, name="no-such-device"))
            rows.clear()
            store.known_ids({record_id(other): other})
            print(f"sqlite, no asked record can match: {len(rows)} rows read of {n} (a full read: {n})")
            probe = stored[1]
            same = [r for r in stored if match_key(r) == match_key(probe)]
            rows.clear()
            store.known_ids({record_id(probe): probe})
            print(f"sqlite, {len(same)} stored record(s) share the asked one's key: {len(rows)} rows read of {n}")
        path = tmp / "c.jsonl"
        with JsonlStore(JsonlStore.Options(path=str(path))) as store:
            store.append(stored)
            store.columns()
            store.append([distinct(1000 + i) for i in range(5)])
            lines.clear()
            store.known_ids({record_id(probe): probe})
            print(f"jsonl, 5 lines appended after a read: {len(lines)} lines parsed of {n + 5}")
        numbers = [i for i in range(100, 200) if i % 3][:20]
        files = []
        for name, part in (("a", numbers[:8]), ("b", numbers[8:16]), ("c", numbers[:4] + numbers[16:20])):
            (tmp / f"{name}.jsonl").write_text("".join(record_to_json(distinct(i)) + "\n" for i in part))
            files.append(str(tmp / f"{name}.jsonl"))
        for url in (f"jsonl:{tmp / 'i.jsonl'}", f"sqlite:{tmp / 'i.sqlite'}"):
            with open_store(url) as store:
                store.append(stored)
            rows.clear()
            lines.clear()
            result = CliRunner().invoke(amk.cli.main, ["--store", url, "corpus", "import", *files])
            assert result.exit_code == 0, result.output
            read = [x for x in (lines if url.startswith("jsonl") else rows) if x <= n]
            unit = "lines parsed" if url.startswith("jsonl") else "rows read"
            print(f"{url.split(':')[0]}, import of 3 files (4 repeated records): {len(read)} stored {unit} "
                  f"of {n} ({len(set(read))} distinct; a read per file: {3 * n})")


if __name__ == "__main__":
    main()
