"""Evaluations to within 5% / 1% of the optimum: amk's tune loop against random search, Optuna TPE and
pooled replay, on every Kernel Tuner cache folder given (default: the shared convolution and dedispersion).

Prints each target's table, then per baseline the ratio baseline / amk of evaluations to 5% (above 1:
amk needed fewer), and the wall time, all measured in the same run. Every latency is replayed from the
caches (recorded on hardware by the benchmark hub), not measured here.

    nice python bench/simulate_kernel_tuner.py [FOLDER ...] [--budget 500] [--seeds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amk.simulate import simulate, summarize  # noqa: E402

DEFAULT_FOLDERS = [REPO.parent / "shared" / "data" / "kernel_tuner" / k for k in ("convolution", "dedispersion")]


def fmt(v: float | None) -> str:
    return "never" if v is None else (f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folders = args.folders or [f for f in DEFAULT_FOLDERS if f.is_dir()]
    rows, started = [], time.monotonic()
    for folder in folders:
        t0 = time.monotonic()
        rows += simulate(folder, budget=args.budget, seeds=args.seeds)
        print(f"# {folder.name}: {time.monotonic() - t0:.0f} s", flush=True)
    print(f"{'kernel':<14}{'device':<9}{'strategy':<9}{'to 5%':>8}{'to 1%':>8}  per seed (5%)")
    for r in rows:
        print(f"{r.kernel:<14}{r.device:<9}{r.strategy:<9}{fmt(r.evals_to_5pct):>8}{fmt(r.evals_to_1pct):>8}  "
              f"{r.per_seed_5pct or ''}")
    print()
    targets: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        targets.setdefault((r.kernel, r.device), {})[r.strategy] = math.inf if r.evals_to_5pct is None \
            else r.evals_to_5pct
    for baseline in ("random", "tpe", "pooled"):
        ratios = [t[baseline] / t["amk"] for t in targets.values() if baseline in t]
        if ratios:
            print(f"{baseline:>7} / amk, evaluations to 5%: median {statistics.median(ratios):.1f}x, "
                  f"min {min(ratios):.1f}x over {len(ratios)} targets")
    print(json.dumps(summarize(rows)))
    print(f"wall time {time.monotonic() - started:.0f} s (budget {args.budget}, {args.seeds} seeds)")
    if args.json:
        args.json.write_text(json.dumps([attrs.asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
