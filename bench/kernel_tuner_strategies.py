"""AmkStrategy against Kernel Tuner's own strategies, in Kernel Tuner's own harness (``tune_cache``).

For every kernel folder under DATA (default ``../shared/data/kernel_tuner``), each device held out in
turn: the other devices' caches, imported by amk's importer, are the corpus of ``AmkStrategy``; every
strategy replays the held-out cache through ``kernel_tuner.tune_cache`` with the same ``max_fevals`` and
the same seeds (``amk.integrations.kernel_tuner.harness``: global generators and scipy's LatinHypercube
seeded). ``amk (empty corpus)`` is AmkStrategy with nothing to learn from.

Per target and strategy it prints the median over seeds of the evaluations (distinct configs, as Kernel
Tuner counts them) until a config within 5% and 1% of the optimum was evaluated (``never``: not within
the budget), and the autotuning methodology's performance score over the budget
(``amk.integrations.kernel_tuner.methodology``: 0 = random search, 1 = the optimum). Then the bars: on
every target AmkStrategy needs fewer evaluations to 5% than each Kernel Tuner strategy (medians), records
every point it evaluates, and with an empty corpus is no worse than random sampling.

Every run ends once it has evaluated a config within 1% of the optimum (``--full-runs``: never), as
Kernel Tuner ends a run whose budget is spent: the evaluations to 5% and 1% do not change, and the
score's curve stays flat from there (its best can improve by less than 1% of the optimum), for every
strategy alike; it saves most of amk's time, whose surrogate costs about 0.1 s per evaluation.

Every latency is replayed from the caches (recorded on GPUs by the benchmark hub), not measured here.

    nice python bench/kernel_tuner_strategies.py [--data DIR] [--kernel NAME ...] [--budget 200]
        [--seeds 5] [--strategy NAME ...] [--full-runs] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amk.integrations.kernel_tuner import AmkStrategy
from amk.integrations.kernel_tuner.harness import (
    KERNEL_TUNER_BASELINES,
    ReplayedCache,
    available_strategies,
    run_strategy,
)
from amk.integrations.kernel_tuner.methodology import performance_score
from amk.simulate import find_kernel_dirs, load_cache
from amk.stores.memory import MemoryStore

AMK, AMK_EMPTY = "amk", "amk (empty corpus)"


def median(values: list[int | None]) -> float | None:
    """The median, counting 'never' (None) as worse than any number."""
    ordered = sorted(math.inf if v is None else v for v in values)
    value = statistics.median(ordered)
    return None if math.isinf(value) else value


def fmt(value: float | None) -> str:
    return "never" if value is None else (f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}")


def run_target(kernel: str, held, others, strategies: list[str], seeds: list[int], budget: int,
               full_runs: bool) -> dict:
    corpus = [r for f in others for r in f.records]
    rows = {}
    cache = ReplayedCache.read(held.path)
    optimum = min(cache.valid_ms)
    stop = None if full_runs else optimum * 1.01
    for name in strategies:
        runs, recorded_all = [], True
        for seed in seeds:
            if name in (AMK, AMK_EMPTY):
                store = MemoryStore()
                if name == AMK:
                    store.append(corpus)
                strategy = AmkStrategy(store=store, seed=seed)
                run = run_strategy(cache, strategy, seed=seed, budget=budget, label=name, stop_within_ms=stop)
                in_store = (len(corpus) if name == AMK else 0) + len(run.visited)
                recorded_all &= strategy.last_run is not None and store.count() == in_store \
                    and len(strategy.last_run.records) == len(run.visited)
            else:
                run = run_strategy(cache, name, seed=seed, budget=budget, stop_within_ms=stop)
            runs.append(run)
        e5 = [r.evaluations_to(optimum * 1.05) for r in runs]
        e1 = [r.evaluations_to(optimum * 1.01) for r in runs]
        scored = [r.times_ms() for r in runs if not r.error]  # a run that raised has no curve
        score = performance_score(scored, cache.valid_ms, budget) if scored else None
        rows[name] = {
            "e5": median(e5), "e1": median(e1), "e5_per_seed": e5, "e1_per_seed": e1,
            "score": score.score if score else math.nan, "score_range": [score.first, score.last] if score else None,
            "evaluations": [len(r.visited) for r in runs], "results": [r.results for r in runs],
            "wall_s": round(sum(r.wall_s for r in runs), 2), "errors": [r.error for r in runs if r.error],
            "recorded_every_point": recorded_all if name in (AMK, AMK_EMPTY) else None,
        }
        print(f"{kernel:<16}{held.device_label:<20}{name:<24}{fmt(rows[name]['e5']):>7}{fmt(rows[name]['e1']):>7}"
              f"{rows[name]['score']:>8.2f}  {e5}  {rows[name]['wall_s']:.0f}s"
              + (f"  ERRORS {rows[name]['errors'][:1]}" if rows[name]["errors"] else ""), flush=True)
    return {"kernel": kernel, "device": held.device_label, "configs": len(cache.valid_ms), "optimum_ms": optimum,
            "strategies": rows}


def bars(targets: list[dict], kt_names: list[str]) -> list[str]:
    inf = math.inf
    lines, fewer_everywhere, recorded, empty_ok = [], True, True, True
    judged = {"fewer": False, "recorded": False, "empty": False}  # a bar no run of this call decides is not met
    for t in targets:
        s = t["strategies"]
        label = f"{t['kernel']} {t['device']}"
        if AMK in s:
            mine = inf if s[AMK]["e5"] is None else s[AMK]["e5"]
            trailing = [k for k in kt_names if k in s and not mine < (inf if s[k]["e5"] is None else s[k]["e5"])]
            fewer_everywhere &= not trailing
            judged["fewer"] = judged["fewer"] or bool([k for k in kt_names if k in s])
            lines.append(f"{label}: amk {fmt(s[AMK]['e5'])} to 5%; "
                         + ("fewer than every Kernel Tuner strategy" if not trailing
                            else f"NOT fewer than {', '.join(trailing)}"))
        for name in (AMK, AMK_EMPTY):
            if name in s:
                recorded &= bool(s[name]["recorded_every_point"])
                judged["recorded"] = True
        if AMK_EMPTY in s and "random_sample" in s:
            mine = inf if s[AMK_EMPTY]["e5"] is None else s[AMK_EMPTY]["e5"]
            theirs = inf if s["random_sample"]["e5"] is None else s["random_sample"]["e5"]
            ok = mine <= theirs and s[AMK_EMPTY]["score"] >= s["random_sample"]["score"]
            empty_ok &= ok
            judged["empty"] = True
            lines.append(f"{label}: empty corpus {fmt(s[AMK_EMPTY]['e5'])} to 5%, score {s[AMK_EMPTY]['score']:.2f};"
                         f" random_sample {fmt(s['random_sample']['e5'])}, score {s['random_sample']['score']:.2f}"
                         + ("" if ok else "  WORSE"))
    def verdict(ok: bool, key: str, needs: str) -> str:
        return ("met" if ok else "NOT met") if judged[key] else f"not judged (this run did not run {needs})"

    lines.append(f"bar: amk fewer evaluations to 5% than each Kernel Tuner strategy on every target: "
                 f"{verdict(fewer_everywhere, 'fewer', 'amk and a Kernel Tuner strategy')}")
    lines.append(f"bar: AmkStrategy recorded every point it evaluated: {verdict(recorded, 'recorded', 'amk')}")
    lines.append(f"bar: with an empty corpus no worse than random_sample (median e5 and score): "
                 f"{verdict(empty_ok, 'empty', 'both amk (empty corpus) and random_sample')}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "kernel_tuner")
    parser.add_argument("--kernel", action="append", help="kernel folder(s) under --data (default: all)")
    parser.add_argument("--budget", type=int, default=200, help="max_fevals of every strategy")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategy", action="append",
                        help=f"strategies (default: {AMK!r}, {AMK_EMPTY!r} and {', '.join(KERNEL_TUNER_BASELINES)})")
    parser.add_argument("--full-runs", action="store_true",
                        help="spend the whole budget even after a config within 1%% of the optimum was found")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Kernel Tuner's per-run warnings; errors are reported per run
    kt_names = [s for s in KERNEL_TUNER_BASELINES if s in available_strategies()]
    strategies = args.strategy or [AMK, AMK_EMPTY, *kt_names]
    kernels = find_kernel_dirs(args.data)
    if args.kernel:
        kernels = {k: v for k, v in kernels.items() if k in args.kernel}
    started, load = time.monotonic(), os.getloadavg()
    print(f"budget {args.budget}, seeds 0..{args.seeds - 1}, runs end within 1% of the optimum: "
          f"{not args.full_runs}; load average {load[0]:.1f} at start")
    print(f"{'kernel':<16}{'held out':<20}{'strategy':<24}{'to 5%':>7}{'to 1%':>7}{'score':>8}  per seed (5%)")
    targets = []
    for kernel, paths in kernels.items():
        files = [load_cache(p) for p in paths]
        for held in files:
            targets.append(run_target(kernel, held, [f for f in files if f is not held], strategies,
                                      list(range(args.seeds)), args.budget, args.full_runs))
    print()
    for line in bars(targets, [s for s in kt_names if s in strategies]):
        print(line)
    wall, load_end = time.monotonic() - started, os.getloadavg()
    print(f"wall {wall:.0f} s; load average {load[0]:.1f} at start, {load_end[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps({"budget": args.budget, "seeds": args.seeds, "targets": targets,
                                         "wall_s": round(wall), "load": [load[0], load_end[0]]}, indent=1))


if __name__ == "__main__":
    main()
