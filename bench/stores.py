"""Store benchmarks on N synthetic records, each figure beside the original algorithm's cost on the same data.

    nice python bench/stores.py --records 100000 [--postgres] [--workdir DIR]

Measures: bulk append into sqlite (and postgres) in records/s; loading one device's training columns;
a warm-start query (the nearest decode shapes on one device, then the best k configs among them)
through the store, opened fresh each time (cold: what one ``amk`` command pays) and kept open (warm).
The baseline (bench/seed_baseline.py, labelled BASELINE) is the original system's algorithm over the
same records as a JSONL file: it re-reads the whole file on every call.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from amk.core.columns import config_key
from amk.core.config import open_store
from amk.core.records import record_to_json
from amk.core.store import CorpusQuery
from amk.decode.shapes import ModelShape
from amk.decode.workload import model_shape
from bench import seed_baseline
from bench.synthetic import synthetic_records

DEVICE = "h100"
K = 3
RADIUS = 1.0
BATCH = 50_000


def warm_start(store, target: ModelShape, device: str, k: int = K, radius: float = RADIUS) -> list[dict]:
    """amk's store side of a warm start: nearest shapes from ``workloads``, then ``best_configs`` for them.

    Ordered like the original (shape distance rounded to 3 places, then latency / floor) so both answers
    can be compared; the real warm start (the prior's) adds its own policy on top of the same two calls.
    """
    scored = [(target.distance(model_shape(w)), w) for w in store.workloads(device, "decode")]
    near = [s for s in scored if s[0] <= radius] or scored
    if not near:
        return []
    best = store.best_configs(device, workloads=[w for _, w in near], per_workload=k, kinds=None)
    distance = {w.key: d for d, w in near}
    order = sorted(range(len(best)), key=lambda i: (
        round(distance[best.workloads[best.workload_index[i]].key], 3),
        best.latency_us[i] / best.bound_us[i] if best.bound_us[i] > 0 else float("inf")))
    seeds, seen = [], set()
    for i in order:
        cfg = best.configs[best.config_index[i]]
        key = config_key(cfg)
        if key not in seen:
            seen.add(key)
            seeds.append(cfg)
            if len(seeds) == k:
                break
    return seeds


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fill(url: str, n: int, seed: int, jsonl: Path | None = None) -> tuple[float, float]:
    """Append n synthetic records in batches; returns (wall, CPU) seconds spent in ``append`` alone.

    CPU seconds (this process's, SQLite's work included for sqlite) say what the store costs whatever
    else the shared machine runs; for postgres the server's own work is not in them.
    """
    wall = cpu = 0.0
    records = synthetic_records(n, seed)
    out = jsonl.open("w") if jsonl else None
    with open_store(url) as store:
        while batch := list(itertools.islice(records, BATCH)):
            if out:
                out.writelines(record_to_json(r) + "\n" for r in batch)
            start, start_cpu = time.perf_counter(), time.process_time()
            store.append(batch)
            wall += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
    if out:
        out.close()
    return wall, cpu


def start_postgres() -> tuple[object, Path]:
    """A PostgreSQL server started for a bench (as the postgres user, in a temp dir): (server, its dir)."""
    from postgres_helpers import PostgresServer

    base = Path(tempfile.mkdtemp(prefix="amk-bench-pg-"))
    shutil.chown(base, "postgres", "postgres")
    server = PostgresServer(base, ["runuser", "-u", "postgres", "--"])
    server.start()
    return server, base


def clean_up(servers: list[tuple[object, Path]], work: Path | None) -> None:
    """Stop the bench's servers and remove their dirs, and ``work`` (None: it is kept)."""
    for server, base in servers:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


def columns_cold(url: str):
    """One device's training columns from a store opened for the purpose (what one command pays)."""
    with open_store(url) as store:
        return store.columns(CorpusQuery(device=DEVICE))


def row(label: str, amk_s: float, base_s: float | None, unit: str = "s") -> None:
    if base_s is None:
        print(f"  {label:<58} amk {amk_s * 1000:10.1f} ms")
    else:
        print(f"  {label:<58} amk {amk_s * 1000:10.1f} ms   BASELINE {base_s * 1000:10.1f} ms   "
              f"{base_s / amk_s:8.1f}x")


def targets(store) -> list[ModelShape]:
    """Target shapes: existing decode shapes with one dimension changed (a new model of a known family)."""
    shapes = [model_shape(w) for w in store.workloads(DEVICE, "decode")[:: 40]]
    out = []
    for i, s in enumerate(shapes[:5]):
        changed = {0: {"n_layers": s.n_layers + 2}, 1: {"vocab": s.vocab + 1000}, 2: {}}[i % 3]
        out.append(ModelShape(**{**s.to_dict(), **changed}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", action="store_true", help="also start a PostgreSQL server and bench it")
    parser.add_argument("--baseline-repeats", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="amk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.records
    corpus = work / "corpus.jsonl"
    sqlite_url = f"sqlite:{work / 'corpus.sqlite'}"
    for stale in work.glob("corpus.*"):
        stale.unlink()

    print(f"# stores bench: {n} synthetic records (seed {args.seed}), device {DEVICE}, k={K}, radius={RADIUS}")
    append_s, append_cpu = fill(sqlite_url, n, args.seed, jsonl=corpus)
    print(f"  {'bulk append into sqlite':<58} {n / append_s:10.0f} records/s ({append_s:.1f} s wall; "
          f"{n / append_cpu:.0f} records per CPU-second)")

    servers = []
    urls = {"sqlite": sqlite_url}
    if args.postgres:
        server, base = start_postgres()
        servers.append((server, base))
        urls["postgres"] = server.new_database()
        pg_s, pg_cpu = fill(urls["postgres"], n, args.seed)
        print(f"  {'bulk append into postgres (COPY)':<58} {n / pg_s:10.0f} records/s ({pg_s:.1f} s wall; "
              f"{n / pg_cpu:.0f} records per client CPU-second)")

    urls["jsonl (columns cache)"] = f"jsonl:{corpus}"
    try:
        base_train_s, base_points = timed(lambda: seed_baseline.training_points(str(corpus), DEVICE),
                                          args.baseline_repeats)
        for name, url in urls.items():
            if name.startswith("jsonl"):
                s, cols = timed(lambda: columns_cold(url))  # noqa: B023
                row(f"{name}: load {DEVICE}'s columns, first read (builds the cache)", s, base_train_s)
            s, cols = timed(lambda: columns_cold(url), 3)  # noqa: B023
            row(f"{name}: load {DEVICE}'s training columns ({len(cols)} rows)", s, base_train_s)
        print(f"  (baseline loaded {len(base_points)} usable points)")

        with open_store(sqlite_url) as store:
            shapes = targets(store)
        base_ws = []
        for target in shapes[:2]:
            s, seeds = timed(lambda: seed_baseline.warm_start(str(corpus), target, DEVICE, K, RADIUS),  # noqa: B023
                             args.baseline_repeats)
            base_ws.append((s, seeds))
        base_ws_s = statistics.median(s for s, _ in base_ws)
        for name, url in urls.items():
            cold, warm, agree = [], [], True
            with open_store(url) as store:
                for i, target in enumerate(shapes):
                    s, seeds = timed(lambda: warm_start(store, target, DEVICE), 5)  # noqa: B023
                    warm.append(s)
                    if i < len(base_ws):
                        agree &= seeds == base_ws[i][1]

            def cold_call(target):
                with open_store(url) as fresh:  # noqa: B023
                    return warm_start(fresh, target, DEVICE)

            for target in shapes:
                s, _ = timed(lambda: cold_call(target), 3)  # noqa: B023
                cold.append(s)
            row(f"{name}: warm start, store kept open (median of {len(shapes)} targets)", statistics.median(warm),
                base_ws_s)
            row(f"{name}: warm start, store opened per call (end to end)", statistics.median(cold), base_ws_s)
            print(f"  {name}: same seeds as the baseline: {'yes' if agree else 'NO'}")
    finally:
        clean_up(servers, None if args.workdir else work)


if __name__ == "__main__":
    main()
