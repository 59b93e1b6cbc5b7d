"""``amk corpus import`` of a whole data folder (every format at once), beside the amk before issue 11.

    git -C /work/wt/formats archive 429f8d3 | tar -x -C /tmp/amk_old      # amk 0.1, before issue 11
    nice python bench/import_all.py --data ../shared/data --baseline-root /tmp/amk_old

Each import runs ``python -m amk --store jsonl:NEW_FILE corpus import ...`` in a fresh process into a
fresh store, one after the other in the same run, and reports wall and CPU seconds (the child's user +
system time), records imported and bad entries as each prints them:

- this checkout on the folder itself (it walks it: amk JSONL, Kernel Tuner, T4 with the T1 beside it);
- the baseline on the same data files (it takes no folder), which it reads as far as it can;
- both on the files the baseline reads (amk JSONL and Kernel Tuner caches), for a like-for-like ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".gz")


def run_import(root: Path, store: Path, inputs: list[str], cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AMK_CONFIG"}
    env["PYTHONPATH"] = str(root)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "amk", "--store", f"jsonl:{store}", "corpus", "import", *inputs],
                          env=env, capture_output=True, text=True, cwd=cwd, check=False)  # not ROOT: -m puts cwd first
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    imported = sum(int(n) for n in re.findall(r"imported (\d+) records", done.stdout))
    bad = sum(int(n) for n in re.findall(r"(\d+) bad entries", done.stdout))
    last_error = next((line for line in reversed(done.stderr.splitlines()) if "error" in line.lower()), "")
    return {"wall": wall, "cpu": cpu, "records": imported, "bad": bad, "rc": done.returncode,
            "files": done.stdout.count("imported "), "error": last_error[:120]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--baseline-root", type=Path, required=True, help="an amk checkout before issue 11")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="amk-bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    args.data = args.data.resolve()
    files = sorted(str(p) for p in args.data.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))
    readable_before = [f for f in files if "/kernel_tuner/" in f or f.endswith(".jsonl")]

    runs = [
        ("this checkout", ROOT, "the folder (every format)", [str(args.data)]),
        ("before #11", args.baseline_root, "the same data files", files),
        ("this checkout", ROOT, "JSONL + Kernel Tuner files", readable_before),
        ("before #11", args.baseline_root, "JSONL + Kernel Tuner files", readable_before),
    ]
    print(f"# amk corpus import of {args.data}: {len(files)} data files; load {os.getloadavg()[0]:.1f}")
    print("| amk | input | records | bad entries | exit | wall s | cpu s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    results = []
    for i, (label, root, what, inputs) in enumerate(runs):
        store = work / f"run{i}.jsonl"
        for stale in work.glob(f"run{i}.jsonl*"):
            stale.unlink()
        r = run_import(root, store, inputs, work)
        version = subprocess.run([sys.executable, "-c", "import amk, sys; print(amk.__file__)"], cwd=work,
                                 env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=False)
        assert version.stdout.strip().startswith(str(root)), (root, version.stdout)
        results.append(r)
        print(f"| {label} | {what} | {r['records']} | {r['bad']} | {r['rc']} | {r['wall']:.1f} | {r['cpu']:.1f} |"
              + (f" {r['error']}" if r["rc"] and r["error"] else ""), flush=True)
    same = results[2], results[3]
    print(f"like for like (JSONL + Kernel Tuner): this checkout {same[0]['cpu']:.1f} cpu s against "
          f"{same[1]['cpu']:.1f}: {same[1]['cpu'] / same[0]['cpu']:.2f}x; load now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
