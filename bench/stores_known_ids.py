"""Duplicate checks (``known_ids``) and multi-file imports, this checkout beside an older one, in one run.

    git -C /work/main archive 4fbf82e | tar -x -C /tmp/amk_old      # the code before (any older checkout)
    nice python bench/stores_known_ids.py --records 1000000 --baseline-root /tmp/amk_old [--postgres]

1. N synthetic records (seed 0) go into a sqlite store, a jsonl file (and postgres with ``--postgres``),
   written once by this checkout (the layouts are the same). The probe is what one import of a file asks:
   1,000 of the stored records and one that is not stored. Each ``known_ids`` is measured in a fresh
   process per checkout (a first call on an existing store: nothing in memory), then a second call in the
   same process; the answers of both checkouts are compared. jsonl is measured without its columns cache
   (a store that was only appended to) and with it (a store that something has read before).
2. ``amk corpus import`` of the 6 Kernel Tuner caches (/work/shared/data/kernel_tuner/*/*.json.gz) in one
   command, into an empty store and into one that already holds ``--prefill`` of the synthetic records,
   run as a command by each checkout; the per-file report lines of both are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_TUNER = sorted(Path("/work/shared/data/kernel_tuner").glob("*/*.json.gz"))


def measure(url: str, probe: Path) -> None:
    """(In a subprocess, with the checkout to measure first on sys.path.) Print the known_ids figures as JSON."""
    from amk.core.config import open_store
    from amk.core.records import record_from_dict, record_id

    records = [record_from_dict(json.loads(line)) for line in probe.read_text().splitlines()]
    wanted = {record_id(r): r for r in records}  # a dict: the older known_ids(ids) iterates its keys
    out = {}
    with open_store(url) as store:
        for call in ("first", "second"):
            start, start_cpu = time.perf_counter(), time.process_time()
            found = store.known_ids(wanted)
            out[call] = (time.perf_counter() - start, time.process_time() - start_cpu)
        out["found"] = sorted(found)
    print(json.dumps(out))


def run_measure(root: Path, url: str, probe: Path) -> dict:
    # This file runs as a script, so the measured checkout's own bench package never shadows it.
    done = subprocess.run([sys.executable, __file__, "--measure", url, str(probe)], capture_output=True, text=True,
                          check=False, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    if done.returncode:
        raise SystemExit(f"measuring {url} with {root} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_import(root: Path, url: str) -> tuple[float, list[str]]:
    """Wall seconds of one ``amk corpus import`` of the Kernel Tuner caches by ``root``, and its report lines."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "amk", "--store", url, "corpus", "import", *map(str, KERNEL_TUNER)],
                          capture_output=True, text=True, check=False, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"import with {root} failed:\n{done.stderr}")
    return wall, [line.replace(url, "STORE") for line in done.stdout.splitlines()]


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        sys.path[0] = os.environ["PYTHONPATH"]  # the checkout to measure, not this script's folder
        measure(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--prefill", type=int, default=100_000, help="records already in the store imported into")
    parser.add_argument("--baseline-root", type=Path, required=True, help="the older amk checkout to compare with")
    parser.add_argument("--postgres", action="store_true", help="also start a PostgreSQL server and bench it")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from amk.core.config import open_store
    from amk.core.records import record_to_json
    from bench.stores import clean_up, fill, start_postgres

    work = args.workdir or Path(tempfile.mkdtemp(prefix="amk-bench-known-"))
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.iterdir():
        stale.unlink()
    roots = {"now": ROOT, "before": args.baseline_root.resolve()}
    n = args.records
    print(f"# known_ids and import bench: {n} synthetic records (seed 0); now = {ROOT}, before = {roots['before']}")

    corpus = work / "corpus.jsonl"
    urls = {"sqlite": f"sqlite:{work / 'corpus.sqlite'}"}
    fill(urls["sqlite"], n, 0, jsonl=corpus)
    servers = []
    try:
        if args.postgres:
            server, base = start_postgres()
            servers.append((server, base))
            urls["postgres"] = server.new_database()
            fill(urls["postgres"], n, 0)
        urls["jsonl, no columns cache yet"] = f"jsonl:{corpus}"
        urls["jsonl, columns cache present"] = f"jsonl:{corpus}"

        lines = corpus.read_text().splitlines(keepends=True)
        probe = work / "probe.jsonl"
        from bench.synthetic import synthetic_records

        absent = next(iter(synthetic_records(1, 1)))
        probe.write_text("".join(lines[:: max(1, n // 1000)][:1000]) + record_to_json(absent) + "\n")

        print("\n## known_ids of 1,001 records (1,000 stored), fresh process per checkout")
        print(f"  {'store':<32} {'first call now':>16} {'before':>12} {'ratio':>8}   {'second call now':>16} "
              f"{'before':>12}   same answer")
        cache = corpus.with_name(corpus.name + ".columns.npz")
        before_of: dict[str, dict] = {}  # the older checkout's jsonl reads no cache: measured once per URL
        for name, url in urls.items():
            if name.startswith("jsonl, no"):
                cache.unlink(missing_ok=True)  # this checkout's first call builds it, for the next row
            figures = {"now": run_measure(ROOT, url, probe)}
            if url not in before_of:
                before_of[url] = run_measure(roots["before"], url, probe)
            figures["before"] = before_of[url]
            now, before = figures["now"], figures["before"]
            same = now["found"] == before["found"] and len(now["found"]) == 1000
            print(f"  {name:<32} {now['first'][0]:14.3f} s {before['first'][0]:10.3f} s "
                  f"{before['first'][0] / now['first'][0]:7.0f}x   {now['second'][0]:14.3f} s "
                  f"{before['second'][0]:10.3f} s   {'yes' if same else 'NO'}")

        print(f"\n## amk corpus import of the {len(KERNEL_TUNER)} Kernel Tuner caches in one command")
        print(f"  {'into':<40} {'now':>10} {'before':>10} {'ratio':>8}   same report")
        with open(corpus, "rb") as src, open(work / "prefill.jsonl", "wb") as dst:
            dst.writelines(line for _, line in zip(range(args.prefill), src))
        prefill_records = None
        for kind in ("jsonl", "sqlite"):
            for prefilled in (False, True):
                walls, reports = {}, {}
                for label, root in roots.items():
                    target = work / f"import-{label}.{kind}"
                    for stale in work.glob(f"import-{label}.{kind}*"):
                        stale.unlink()
                    url = f"{kind}:{target}"
                    if prefilled:
                        if kind == "jsonl":
                            shutil.copy(work / "prefill.jsonl", target)
                        else:
                            if prefill_records is None:
                                from amk.core.records import record_from_dict

                                prefill_records = [record_from_dict(json.loads(line))
                                                   for line in (work / "prefill.jsonl").read_text().splitlines()]
                            with open_store(url) as store:
                                store.append(prefill_records)
                    walls[label], reports[label] = run_import(root, url)
                into = f"{kind}, {'holding ' + format(args.prefill, ',') if prefilled else 'empty'}"
                print(f"  {into:<40} {walls['now']:8.1f} s {walls['before']:8.1f} s "
                      f"{walls['before'] / walls['now']:7.1f}x   {'yes' if reports['now'] == reports['before'] else 'NO'}")
    finally:
        clean_up(servers, None if args.workdir else work)


if __name__ == "__main__":
    main()
