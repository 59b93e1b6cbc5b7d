"""The first read of a jsonl corpus without its columns cache, this checkout beside an older one, in one run.

    git -C /work/main archive <commit> | tar -x -C /tmp/amk_old      # the code before (any older checkout)
    nice python bench/stores_first_read.py --records 1000000 --baseline-root /tmp/amk_old

N synthetic records (``bench/synthetic.py``, seed 0) are written once as one jsonl file. Each checkout,
in a fresh process, deletes ``<file>.columns.npz`` and reads the store's columns (what the first
``amk corpus import`` duplicate check, training read or ``amk corpus stats`` pays), then reads them again
(from the cache it wrote). The columns and problems both checkouts read are compared by digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(path: Path) -> None:
    """(In a subprocess, with the checkout to measure first on sys.path.) Print the figures as JSON."""
    import numpy as np

    from amk.stores.jsonl import JsonlStore

    Path(str(path) + ".columns.npz").unlink(missing_ok=True)
    out = {}
    for call in ("first", "cached"):
        store = JsonlStore(JsonlStore.Options(path=str(path)))
        start, start_cpu = time.perf_counter(), time.process_time()
        cols = store.columns()
        out[call] = (time.perf_counter() - start, time.process_time() - start_cpu)
    digest = hashlib.sha1()
    for name in ("workload_index", "device_index", "config_index", "latency_us", "bound_us", "verdict", "kind",
                 "timestamp"):
        digest.update(np.ascontiguousarray(getattr(cols, name)).tobytes())
    digest.update(json.dumps([[w.key for w in cols.workloads], [repr(d) for d in cols.devices], cols.configs,
                              cols.source.tolist(), [[p.where, p.reason] for p in store.problems()]]).encode())
    out["records"] = len(cols)
    out["digest"] = digest.hexdigest()
    print(json.dumps(out))


def run_measure(root: Path, path: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True,
                          check=False, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    if done.returncode:
        raise SystemExit(f"measuring with {root} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        sys.path[0] = os.environ["PYTHONPATH"]  # the checkout to measure, not this script's folder
        measure(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--baseline-root", type=Path, required=True, help="the older amk checkout to compare with")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.synthetic import write_jsonl

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path = Path(tmp) / "corpus.jsonl"
        start = time.perf_counter()
        write_jsonl(path, args.records, seed=0)
        print(f"{args.records:,} synthetic records written ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.0f} s")
        old = run_measure(args.baseline_root.resolve(), path)
        new = run_measure(ROOT, path)
        print(f"{'read':<30}{'before: wall s':>16}{'cpu s':>8}{'this: wall s':>14}{'cpu s':>8}{'speed-up':>10}")
        for call, label in (("first", "first read (no cache)"), ("cached", "second read (cache)")):
            (ow, oc), (nw, nc) = old[call], new[call]
            print(f"{label:<30}{ow:>16.2f}{oc:>8.2f}{nw:>14.2f}{nc:>8.2f}{ow / nw:>9.1f}x")
        same = old["digest"] == new["digest"] and old["records"] == new["records"]
        print(f"records read: {new['records']:,}; same columns and problems as before: {same}")
        if not same:
            raise SystemExit("the two checkouts read different columns or problems")


if __name__ == "__main__":
    main()
