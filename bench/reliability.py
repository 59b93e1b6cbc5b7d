"""The fault-injection loops of tests/test_reliability_*.py at full size: what each counts should be 0.

    nice python bench/reliability.py [--importers 8] [--runs 3] [--races 10] [--kills 10] [--hostile 1000]
                                     [--no-postgres] [--baseline DIR]

Per store (jsonl, sqlite, and a PostgreSQL server started for the bench): N processes import one file of
1,000 records at once, ``--runs`` times -> records stored twice (and missing); three ``amk corpus
migrate`` racing an appender of 300 records, ``--races`` times (jsonl, sqlite) -> confirmed appends lost;
``--kills`` SIGKILLs at random moments of an import (each store), a migration (jsonl, sqlite), a measured
tune run with A/B (then resumed) and a LightGBM model save -> stores left corrupted (unreadable, a record
not whole, a problem other than a torn last line, a SQL transaction half applied), resumed runs that
differ from what their records say, loaders that crashed; ``--hostile`` hypothesis-generated hostile
records (tests/hostile.py) through the jsonl reader, the importer, a SQLite row, a candidates file and a
tune state file -> tracebacks (any exception but amk's own errors) and neighbour records lost.

``--baseline DIR`` runs the same loops against another amk checkout (e.g. the commit before this work) in
the same run, for the figures beside them. Processes are real; every race and kill is random (seeded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
WORKER = TESTS / "reliability_worker.py"


def env_for(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AMK_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(TESTS)])
    return env


def start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env_for(root))


def kill_after(proc: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def fresh_url(kind: str, work: Path, name: str, pg) -> str:
    if kind == "postgres":
        return pg.new_database()
    return f"{kind}:{work / f'{name}.{kind}'}"


def importers(root: Path, work: Path, kinds: list[str], pg, n: int, runs: int) -> dict[str, tuple[int, int]]:
    from store_helpers import make_record

    from amk.core.config import open_store
    from amk.core.records import record_id, record_to_json

    source = work / "measured.jsonl"
    source.write_text("".join(record_to_json(make_record(i)) + "\n" for i in range(1000)))
    out = {}
    for kind in kinds:
        duplicates = missing = 0
        for run in range(runs):
            url = fresh_url(kind, work, f"imp{run}", pg)
            go = work / f"go-imp-{kind}-{run}"
            procs = [start(root, "import", url, str(source), str(go)) for _ in range(n)]
            go.touch()
            for p in procs:
                p.communicate(timeout=600)
            with open_store(url) as store:
                ids = [record_id(r) for r in store.query()]
            duplicates += len(ids) - len(set(ids))
            missing += 1000 - len(set(ids))
        out[kind] = (duplicates, missing)
    return out


def migrate_races(root: Path, work: Path, runs: int) -> dict[str, tuple[int, int, int]]:
    import sqlite3

    from reliability_worker import ORIGINAL
    from store_helpers import make_record

    from amk.core.config import open_store
    from amk.core.records import record_from_dict, record_id

    out = {}
    for kind in ("jsonl", "sqlite"):
        lost = confirmed_total = failed = 0
        for run in range(runs):
            path = work / f"race{run}.{kind}"
            url = f"{kind}:{path}"
            if kind == "jsonl":
                path.write_text("".join(json.dumps(ORIGINAL) + "\n" for _ in range(2000)))
            else:
                with open_store(url) as store:
                    store.append([record_from_dict(ORIGINAL)] * 2000)
                with sqlite3.connect(path) as conn:
                    conn.execute("UPDATE amk_records SET schema_version = 0")
                    conn.execute("UPDATE amk_bodies SET body = ?", (json.dumps(ORIGINAL),))
            go, confirmed = work / f"go-race-{kind}-{run}", work / f"confirmed-{kind}-{run}.txt"
            procs = [start(root, "append", url, str(go), "300", str(confirmed), "old"),
                     *(start(root, "migrate", url, str(go)) for _ in range(3))]
            go.touch()
            for p in procs:
                p.communicate(timeout=600)
                failed += p.returncode != 0
            done = [int(x) for x in confirmed.read_text().split()] if confirmed.exists() else []
            try:
                with open_store(url) as store:
                    held = {record_id(r) for r in store.query()}
            except Exception:  # noqa: BLE001 - an unreadable store loses every append
                held = set()
            confirmed_total += len(done)
            lost += sum(record_id(make_record(i, writer=7)) not in held for i in done)
        out[kind] = (lost, confirmed_total, failed)
    return out


def whole(url: str, expected: set[str], batch: int | None) -> bool:
    """Whether the store reads, holds only whole expected records, reports no problem but a torn last line, and
    (SQL) holds whole transactions of ``batch`` records."""
    from amk.core.config import open_store
    from amk.core.records import record_to_json

    try:
        with open_store(url) as store:
            got = [record_to_json(r) for r in store.query()]
            problems = store.problems()
    except Exception as exc:  # noqa: BLE001 - an unreadable store is a corrupted one
        return _bad(f"{url} cannot be read: {exc!r}")
    if not set(got) <= expected:
        return _bad(f"{url} holds {len(set(got) - expected)} records that were never imported")
    odd = [p for p in problems if "incomplete last line" not in p.reason and "torn line" not in p.reason]
    if odd:
        return _bad(f"{url}: {odd[0].where}: {odd[0].reason}")
    if batch is not None and len(got) % batch:
        return _bad(f"{url} holds {len(got)} records, not whole transactions of {batch}")
    return True


def _bad(why: str) -> bool:
    print(f"    corrupted: {why}", flush=True)
    return False


def kills(root: Path, work: Path, kinds: list[str], pg, k: int) -> dict[str, tuple[int, int]]:
    from reliability_worker import ORIGINAL
    from store_helpers import make_record

    from amk.core.config import open_store
    from amk.core.records import record_from_dict, record_to_json
    from amk.formats import read_file

    rng = random.Random(11)
    out: dict[str, tuple[int, int]] = {}
    source = work / "kill-source.jsonl"
    source.write_text("".join(record_to_json(make_record(i)) + "\n" for i in range(500)))
    expected = {record_to_json(i.record) for i in read_file(source)}
    for kind in kinds:
        url, bad = fresh_url(kind, work, "kill-import", pg), 0
        for _ in range(k):
            kill_after(start(root, "import-forever", url, str(source)), rng.uniform(0.5, 3.0))
            bad += not whole(url, expected, None if kind == "jsonl" else 500)
        out[f"import ({kind})"] = (bad, k)
    for kind in ("jsonl", "sqlite"):
        path, bad = work / f"kill-migrate.{kind}", 0
        url = f"{kind}:{path}"
        for i in range(k):
            keep = [make_record(j) for j in range(20 * i, 20 * i + 20)]
            if kind == "jsonl":
                with path.open("a") as f:
                    f.write("".join(json.dumps(ORIGINAL) + "\n" for _ in range(1500)))
                    f.write("".join(record_to_json(r) + "\n" for r in keep))
            else:
                import sqlite3

                with open_store(url) as store:
                    store.append(keep + [record_from_dict(ORIGINAL)] * 1500)
                with sqlite3.connect(path) as conn:
                    last = conn.execute("SELECT MAX(id) FROM amk_records").fetchone()[0]
                    conn.execute("UPDATE amk_records SET schema_version = 0 WHERE id > ?", (last - 1500,))
                    conn.execute("UPDATE amk_bodies SET body = ? WHERE id > ?", (json.dumps(ORIGINAL), last - 1500))
            try:
                with open_store(url) as store:
                    before = sorted(record_to_json(r) for r in store.query())
                kill_after(start(root, "migrate-forever", url), rng.uniform(0.3, 2.0))
                with open_store(url) as store:
                    after = sorted(record_to_json(r) for r in store.query())
                    problems = store.problems()
                bad += after != before or bool(problems)
            except Exception:  # noqa: BLE001 - an unreadable store is a corrupted one
                bad += 1
        out[f"migrate ({kind})"] = (bad, k)
    out["tune, killed then resumed"] = tune_kills(root, work, rng, k)
    bad = 0
    for i in range(k):
        folder = work / f"model{i}"
        saver = start(root, "save-model", str(folder))
        saver.stdout.readline()
        kill_after(saver, rng.uniform(0.02, 0.8))
        loader = subprocess.run([sys.executable, str(WORKER), "load-model", str(folder)], capture_output=True,
                                text=True, env=env_for(root), timeout=300, check=False)
        bad += loader.returncode != 0 or not (loader.stdout.startswith("loaded") or loader.stdout.startswith("refused"))
    out["LightGBM model save (loader crashed)"] = (bad, k)
    return out


def tune_kills(root: Path, work: Path, rng: random.Random, k: int) -> tuple[int, int]:
    """Each of ``k`` runs killed once at a random evaluation, then resumed to the end; a run is bad when an
    evaluation was measured twice, or its incumbent is not the one its records say (the kept candidate's
    A/B median, or its own latency when it was kept without one)."""
    bad = 0
    for i in range(k):
        folder = work / f"tune{i}"
        folder.mkdir()
        corpus = folder / "corpus.jsonl"

        def run(mode: str, folder: Path = folder) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, str(WORKER), "tune", str(folder), mode, "30"], env=env_for(root),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        proc, target = run("new"), rng.randint(3, 60)
        deadline = time.monotonic() + 300
        while (not corpus.exists() or corpus.read_bytes().count(b"\n") < target) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = run("resume")
        resumed.communicate(timeout=600)
        try:
            lines = [json.loads(x) for x in corpus.read_text().splitlines() if x.strip()]
            state = json.loads((folder / "run.state.json").read_text())
            candidates = [r for r in lines if r["provenance"]["extra"]["role"] == "candidate"]
            evaluations = [r["provenance"]["extra"]["evaluation"] for r in candidates]
            kept = [r for r in candidates if r["provenance"]["extra"]["kept"]]
            last = kept[-1]["provenance"]["extra"]["evaluation"]
            ab = [r for r in lines if r["provenance"]["extra"]["evaluation"] == last
                  and r["provenance"]["extra"]["role"] == "ab-challenger"][-2:]
            expected = statistics.median(r["measurement"]["latency_us"] for r in ab) if last > 1 and ab else \
                kept[-1]["measurement"]["latency_us"]
            ok = resumed.returncode == 0 and evaluations == list(range(1, 31)) and \
                abs(state["incumbent_us"] - expected) <= 1e-9 * expected
        except Exception:  # noqa: BLE001 - a run that cannot be read back is a bad one
            ok = False
        bad += not ok
    return bad, k


def hostile(root: Path, work: Path, h: int) -> dict[str, tuple[int, int]]:
    """Each hostile line through each entry point: (tracebacks, neighbour records lost)."""
    import sqlite3

    from hostile import hostile_lines
    from hypothesis import HealthCheck, given, settings
    from store_helpers import make_record

    from amk.core.config import open_store
    from amk.core.errors import AmkError
    from amk.core.records import record_to_json
    from amk.formats import read_file

    first, last = record_to_json(make_record(100)), record_to_json(make_record(101))
    counts = {name: [0, 0] for name in ("jsonl store read", "importer", "sqlite row read", "candidates file",
                                        "tune state file")}
    examples = [0]

    def attempt(name: str, action) -> None:
        try:
            if not action():
                counts[name][1] += 1
        except AmkError:
            pass
        except Exception:  # noqa: BLE001 - what the bench counts: a traceback
            counts[name][0] += 1

    def jsonl_read(path: Path) -> bool:
        with open_store(f"jsonl:{path}") as store:
            got = [record_to_json(r) for r in store.query()]
            store.problems()
            store.count()
            store.columns()
            store.stats()
        return got[0] == first and got[-1] == last

    def importer(path: Path) -> bool:
        records = [i.record for i in read_file(path, "amk-jsonl") if i.record is not None]
        return record_to_json(records[0]) == first and record_to_json(records[-1]) == last

    def sqlite_read(folder: Path, line: str) -> bool:
        url = f"sqlite:{folder / 'c.sqlite'}"
        with open_store(url) as store:
            store.append([make_record(100), make_record(7), make_record(101)])
        with sqlite3.connect(folder / "c.sqlite") as conn:
            conn.execute("UPDATE amk_records SET schema_version = 0 WHERE id = 2")
            conn.execute("UPDATE amk_bodies SET body = ? WHERE id = 2",
                         (line.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),))
        with open_store(url) as store:
            got = [record_to_json(r) for r in store.query()]
            store.count()
            store.columns()
            store.stats()
        return got[0] == first and got[-1] == last

    def candidates(path: Path) -> bool:
        from amk.cli.prior_cmd import _read_candidates

        _read_candidates(str(path))
        return True

    def state(path: Path, line: str) -> bool:
        from amk.tuning.state import TuneState

        data = {"version": 1, "run_id": "r", "target": "t", "seed": 0, "rng_state": {}, "trials": [],
                "seed_queue": [], "warm_sources": [], "incumbent_key": None, "incumbent_us": None,
                "measurements": 0, "elapsed_s": 0.0, "sessions": 1, "stop_reason": None}
        key = ["seed", "elapsed_s", "measurements", "incumbent_us", "stop_reason", "trials"][len(line) % 6]
        path.write_bytes(json.dumps({**data, key: "\u2063"}).replace('"\\u2063"', line).encode("utf-8",
                                                                                                "surrogatepass"))
        TuneState.load(path, "t")
        return True

    @settings(max_examples=h, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(line=hostile_lines())
    def run(line: str) -> None:
        examples[0] += 1
        folder = Path(tempfile.mkdtemp(dir=work))
        path = folder / "c.jsonl"
        path.write_bytes(f"{first}\n{line}\n{last}\n".encode("utf-8", "surrogatepass"))
        attempt("jsonl store read", lambda: jsonl_read(path))
        attempt("importer", lambda: importer(path))
        attempt("sqlite row read", lambda: sqlite_read(folder, line))
        (folder / "cand.jsonl").write_bytes(f"{line}\n".encode("utf-8", "surrogatepass"))
        attempt("candidates file", lambda: candidates(folder / "cand.jsonl"))
        attempt("tune state file", lambda: state(folder / "s.json", line))
        shutil.rmtree(folder, ignore_errors=True)

    run()
    return {name: (c[0], c[1], examples[0]) for name, c in counts.items()}


def measure(root: Path, args, pg) -> None:
    kinds = ["jsonl", "sqlite"] + (["postgres"] if pg is not None else [])
    work = Path(tempfile.mkdtemp(prefix="amk-bench-reliability-"))
    print(f"# amk from {root}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    t0 = time.perf_counter()
    print(f"\n{args.importers} processes importing one file of 1,000 records at once, {args.runs} runs per store")
    for kind, (dup, missing) in importers(root, work, kinds, pg, args.importers, args.runs).items():
        print(f"  {kind:<10} records stored twice: {dup:6d}   missing: {missing}")
    print(f"\n3 migrations racing an appender of 300 records, {args.races} runs per store")
    for kind, (lost, total, failed) in migrate_races(root, work, args.races).items():
        print(f"  {kind:<10} confirmed appends lost: {lost:5d} of {total}   processes that failed: {failed}")
    print(f"\n{args.kills} SIGKILLs at random moments of each long operation")
    for what, (bad, k) in kills(root, work, kinds, pg, args.kills).items():
        print(f"  {what:<40} corrupted / wrong: {bad} of {k}")
    print(f"\n{args.hostile} hypothesis-generated hostile records (tests/hostile.py) through each entry point")
    for what, (tracebacks, lost, n) in hostile(root, work, args.hostile).items():
        print(f"  {what:<20} tracebacks: {tracebacks:5d}   neighbours lost: {lost:5d}   (of {n} records)")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--importers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--hostile", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another amk checkout to run the same loops against")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path[:0] = [str(args.root), str(TESTS), str(ROOT)]  # the measured amk first
    pg = None
    if not args.no_postgres:
        from bench.stores import start_postgres

        pg, base = start_postgres()
    try:
        if args.baseline is not None:  # the baseline in its own process: its amk must not mix with this one's
            cmd = [sys.executable, str(Path(__file__)), "--root", str(args.baseline), "--importers",
                   str(args.importers), "--runs", str(args.runs), "--races", str(args.races), "--kills",
                   str(args.kills), "--hostile", str(args.hostile), *(["--no-postgres"] if args.no_postgres else [])]
            print("## baseline", flush=True)
            subprocess.run(cmd, check=False)
            print("\n## this checkout", flush=True)
        measure(args.root, args, pg)
    finally:
        if pg is not None:
            from bench.stores import clean_up

            clean_up([(pg, base)], None)


if __name__ == "__main__":
    main()
