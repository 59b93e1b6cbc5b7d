"""sqlite bulk append and duplicate checks on N synthetic records, beside the code they replace.

    nice python bench/stores_append.py --records 1000000 [--root DIR] [--workdir DIR]

``--root`` runs the same measurements against another amk checkout (e.g. main before this change) so
the old and new figures come from the same machine and data. Measures, in records/s wall and per
CPU-second: appends in batches of 50,000 (as bench/stores.py) and one append of everything (what
``amk corpus import`` does with one file); then the duplicate check of ``corpus import``: every record id
of the store (``record_id`` over ``query()``, the old way) against ``known_ids`` (a first and a second
call; bench/stores_known_ids.py compares them across checkouts).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clocked(fn):
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - start_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=ROOT, help="the amk checkout to measure")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sys.path[:0] = [str(args.root), str(ROOT)]
    from amk.core.records import record_id
    from amk.stores.sqlite import SqliteStore
    from bench.synthetic import synthetic_records

    work = args.workdir or Path(tempfile.mkdtemp(prefix="amk-bench-append-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.records
    records = list(synthetic_records(n, 0))
    print(f"# sqlite append bench: {n} synthetic records (seed 0), amk from {args.root}")

    def fresh(name: str) -> SqliteStore:
        for stale in work.glob(f"{name}*"):
            stale.unlink()
        return SqliteStore(SqliteStore.Options(path=str(work / name)))

    def report(label: str, wall: float, cpu: float, count: int = n) -> None:
        print(f"  {label:<52} {count / wall:9.0f} records/s wall ({wall:6.1f} s), {count / cpu:9.0f} per CPU-second")

    with fresh("batches.sqlite") as store:
        wall = cpu = 0.0
        for start in range(0, n, 50_000):
            w, c, _ = clocked(lambda: store.append(records[start:start + 50_000]))  # noqa: B023
            wall, cpu = wall + w, cpu + c
        report("append in batches of 50,000", wall, cpu)
    with fresh("single.sqlite") as store:
        w, c, _ = clocked(lambda: store.append(records))
        report("one append of every record", w, c)
        # {id: record}: known_ids takes the records with their ids (an older checkout iterates the ids).
        probe = {record_id(r): r for r in records[:: max(1, n // 1000)]}
        probe["0" * 20] = records[0]  # an id no record has
        w, c, old = clocked(lambda: {record_id(r) for r in store.query()})
        report("duplicate check: record_id of every stored record", w, c)
        if hasattr(store, "known_ids"):
            w, c, first = clocked(lambda: store.known_ids(probe))
            report("duplicate check: known_ids, first call", w, c)
            w, c, again = clocked(lambda: store.known_ids(probe))
            print(f"  {'duplicate check: known_ids, later call':<52} {w * 1000:9.1f} ms for {len(probe)} ids")
            print(f"  same answer as the old check: {'yes' if first == again == old & set(probe) else 'NO'}")
    if args.workdir is None:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
