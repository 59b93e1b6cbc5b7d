"""The tune loop's cold start (an EMPTY corpus) against random search, and how its setting is chosen.

    nice python bench/search_cold.py --setting NAME [--seeds 3] [--budget 200] --json OUT   (one per setting)
    python bench/search_cold.py --nest OUT1 OUT2 ...                                     (the nested choice)

Run mode: every dev target (each cache of the four dev kernels, ../shared/data/kernel_tuner) tuned by
amk's loop with NOTHING in its corpus (no sources, no zero-shot order, an untrained prior), under the
setting NAME of COLD_SETTINGS: evaluations until a config within 5% of the target's optimum (per seed;
None: not within the budget), beside random search's exact expectation (n + 1) / (m + 1) over the same
candidates (m of them within 5%).

Nest mode: with an empty corpus there is no device to hold out inside a target, so the setting is chosen
by leave-one-TARGET-out: for each target, the setting with the least mean log2 evaluations to 5% (not
reached: budget + 1) over the OTHER targets and seeds; that setting's result on the target is what
counts. Ties go to the first listed (the a-priori default). Printed: each setting's and the nested
pick's targets no worse than random (median over seeds), and which setting the nesting picks how often.
amk/tuning/ensemble.py's COLD_THOMPSON (and COLD_RANDOM_SHARE, kappa) are what this nesting picks.

Every latency is replayed from the Kernel Tuner caches (recorded on GPUs by others), not measured here.
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
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amk.simulate import find_kernel_dirs, held_out_target, load_cache
from amk.tuning import ensemble
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings

DEV_KERNELS = ("convolution", "dedispersion", "convolution_rtx", "pnpoly")
# name -> (COLD_RANDOM_SHARE, [tune] settings); the first is the a-priori default.
COLD_SETTINGS: dict[str, tuple[float, dict]] = {
    "chance only, kappa 1": (0.0, {"kappa": 1.0}),  # the trees pick by mean - kappa x spread
    "random share 0.2, kappa 1": (0.2, {"kappa": 1.0}),
    "chance only, kappa 3": (0.0, {"kappa": 3.0}),
    "chance only, Thompson": (0.0, {"kappa": 1.0}),  # the trees pick by one tree drawn at random
}


def run(setting: str, seeds: int, budget: int) -> list[dict]:
    share, options = COLD_SETTINGS[setting]
    ensemble.COLD_RANDOM_SHARE = share
    ensemble.COLD_THOMPSON = "Thompson" in setting
    settings = attrs.evolve(TuneSettings(**options), isolation="thread")
    rows = []
    for kernel in DEV_KERNELS:
        for k, paths in find_kernel_dirs(REPO.parent / "shared" / "data" / "kernel_tuner" / kernel).items():
            for held in [load_cache(p) for p in paths]:
                started = time.monotonic()
                target, truth = held_out_target(held, [], settings)
                optimum = float(np.nanmin(truth))
                good = np.nan_to_num(truth, nan=np.inf) <= 1.05 * optimum
                evals = []
                for seed in range(seeds):
                    result = tune(target, settings, seed=seed, budget=budget, minutes=0, stop_at_us=1.05 * optimum)
                    evals.append(result.evaluations_to(1.05 * optimum))
                row = {"kernel": k, "device": held.device_label, "evals": evals, "budget": budget,
                       "random": (len(truth) + 1) / (int(good.sum()) + 1)}
                rows.append(row)
                print(f"{k:<16}{held.device_label:<22} {evals}  random {row['random']:.1f}  "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
    return rows


def median(evals: list[int | None]) -> float:
    return statistics.median(math.inf if e is None else e for e in evals)


def nest(results: dict[str, list[dict]]) -> None:
    names = list(results)
    targets = len(results[names[0]])
    cost = {n: [float(np.mean([math.log2(e if e is not None else r["budget"] + 1) for e in r["evals"]]))
                for r in results[n]] for n in names}
    picked, picks = [], []
    for t in range(targets):
        inner = {n: float(np.mean([c for i, c in enumerate(cost[n]) if i != t])) for n in names}
        pick = names[0] if inner[names[0]] <= min(inner.values()) else min(inner, key=inner.get)
        picks.append(pick)
        picked.append(median(results[pick][t]["evals"]))
    random = [r["random"] for r in results[names[0]]]
    for n in names:
        values = [median(r["evals"]) for r in results[n]]
        print(f"{n:<28} no worse than random on {sum(v <= x for v, x in zip(values, random))}/{targets}, "
              f"median {statistics.median(values):g}")
    print(f"{'nested pick':<28} no worse than random on {sum(v <= x for v, x in zip(picked, random))}/{targets}, "
          f"median {statistics.median(picked):g}; picks: { {p: picks.count(p) for p in dict.fromkeys(picks)} }")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setting", choices=list(COLD_SETTINGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--nest", nargs="+", type=Path)
    args = parser.parse_args()
    if args.nest:
        loaded = [json.loads(p.read_text()) for p in args.nest]
        order = {n: i for i, n in enumerate(COLD_SETTINGS)}
        nest({d["setting"]: d["rows"] for d in sorted(loaded, key=lambda d: order[d["setting"]])})
        return
    rows = run(args.setting, args.seeds, args.budget)
    if args.json:
        args.json.write_text(json.dumps({"setting": args.setting, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
