"""Nested leave-one-device-out: how the tune loop's settings are chosen without the answer in hand.

    nice python -m bench.search_nested [FOLDER ...] [--seeds 2] [--budget 400] [--inner-budget 100] [--json OUT]

For every kernel folder (default: the four shared dev kernels) and every device t held out (the OUTER
fold, as ``amk simulate`` does), each candidate setting is scored on the INNER folds: each other device j
held out in turn with the devices other than t and j as its corpus; the setting with the fewest
evaluations to within 5% of j's optimum (mean log2 over inner folds and seeds; not reached = inner
budget + 1) is the one the nesting picks for t, ties going to the first listed (the a-priori default).
t's own results never enter the choice. Printed per outer target: each setting's evaluations to 5% on t
(median over seeds) and the nested pick's; then per setting the targets where it needed no more than
pooled replay and the median. The defaults in amk/tuning/settings.py are what this nesting picks.

The same nesting is run for the zero-shot order (no tune loop needed, so it is cheap): pooled replay
(the default), the geometric mean, the median and the best-of over the source devices, chosen by inner
leave-one-device-out over the corpus devices; it shows why amk does not choose between them at run time
(amk/prior/transfer.py, ``zero_shot``).

Every latency is replayed from the Kernel Tuner caches (recorded on hardware by others), not measured.
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

from amk.prior.transfer import Sources, order_of, pooled_score, weighted_support
from amk.simulate import _pooled_order, find_kernel_dirs, held_out_target, load_cache
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings

DEV_KERNELS = ("convolution", "dedispersion", "convolution_rtx", "pnpoly")
# The settings the nesting chooses between; the first is the a-priori default, which wins ties.
SETTINGS: dict[str, dict] = {
    "ensemble kappa=1": {"policy": "ensemble", "exploration": "uncertainty", "kappa": 1.0},
    "ensemble kappa=0": {"policy": "ensemble", "exploration": "uncertainty", "kappa": 0.0},
    "ensemble epsilon=0.1": {"policy": "ensemble", "exploration": "epsilon", "epsilon": 0.1},
    "surrogate kappa=1": {"policy": "surrogate", "exploration": "uncertainty", "kappa": 1.0},
}


# --- zero-shot orders (the alternatives to pooled replay studied here) -----------------------------------
def geometric(filled: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w, total = weighted_support(filled, weights)
    return np.where(total > 0, (w * np.nan_to_num(filled)).sum(axis=1), np.nan)


def median(filled: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.nanmedian(np.where(weights[None, :] > 0, filled, np.nan), axis=1)


def best(filled: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.nanmin(np.where(weights[None, :] > 0, filled, np.nan), axis=1)


ZERO_SHOT = {"pooled": pooled_score, "geometric": geometric, "median": median, "best": best}


def first_good(order: np.ndarray, truth: np.ndarray, within: float = 1.05) -> int | None:
    ranked = np.nan_to_num(truth[order], nan=np.inf)
    hits = np.flatnonzero(ranked <= within * np.nanmin(truth))
    return int(hits[0]) + 1 if len(hits) else None


def zero_shot_nesting(sources: Sources, truth: np.ndarray) -> dict:
    """Each zero-shot order's evaluations to 5% on the target, and the one inner LODO over the source
    devices picks (mean log2 evaluations; ties to pooled)."""
    filled = sources.filled()
    devices = sorted(set(sources.devices))
    outer = {}
    for name, scorer in ZERO_SHOT.items():
        w = np.ones(filled.shape[1])
        outer[name] = first_good(order_of(scorer(filled, w), weighted_support(filled, w)[1]), truth)
    inner: dict[str, float] = {}
    if len(devices) >= 3:
        for name, scorer in ZERO_SHOT.items():
            logs = []
            for held in devices:
                keep = [j for j, d in enumerate(sources.devices) if d != held]
                mine = [j for j, d in enumerate(sources.devices) if d == held]
                with np.errstate(all="ignore"):
                    rel = np.exp(np.nanmin(sources.log_relative[:, mine], axis=1))
                rel[sources.failed[:, mine].all(axis=1)] = np.inf
                known = ~np.isnan(rel)
                w = np.ones(len(keep))
                order = order_of(np.where(known, scorer(filled[:, keep], w), np.nan))
                order = order[known[order]]
                hit = first_good(order, np.where(np.isinf(rel), np.nan, rel))
                logs.append(math.log2(hit if hit else known.sum() + 1))
            inner[name] = float(np.mean(logs))
    pick = "pooled" if not inner or inner["pooled"] <= min(inner.values()) else min(inner, key=inner.get)
    return {"outer": outer, "inner": inner, "pick": pick, "picked": outer[pick]}


# --- the tune loop's settings ---------------------------------------------------------------------------
_TARGETS: dict[tuple, tuple] = {}


def prepared(held, others):
    """The held-out target and truth, built once per (held, corpus): no setting compared here changes it."""
    key = (held.path, *sorted(f.path for f in others))
    if key not in _TARGETS:
        _TARGETS.clear() if len(_TARGETS) > 16 else None
        _TARGETS[key] = held_out_target(held, others, attrs.evolve(TuneSettings(), isolation="thread"))
    return _TARGETS[key]


def evals_to_5pct(held, others, settings: TuneSettings, seeds: int, budget: int) -> list[int | None]:
    target, truth = prepared(held, others)
    optimum = float(np.nanmin(truth))
    out = []
    for seed in range(seeds):
        result = tune(target, settings, seed=seed, budget=budget, minutes=0, stop_at_us=optimum * 1.05)
        out.append(result.evaluations_to(optimum * 1.05))
    return out


def med(values: list[int | None]) -> float:
    return statistics.median(math.inf if v is None else v for v in values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--inner-budget", type=int, default=100)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    chosen = [s for s in args.settings.split(",") if s]
    folders = args.folders or [REPO.parent / "shared" / "data" / "kernel_tuner" / k for k in DEV_KERNELS]
    rows, started = [], time.monotonic()
    for folder in folders:
        for kernel, paths in find_kernel_dirs(folder).items():
            files = [load_cache(p) for p in paths]
            for held in files:
                others = [f for f in files if f is not held]
                t0 = time.monotonic()
                target, truth = prepared(held, others)
                zs = zero_shot_nesting(Sources(target.base_names, [n.split("[")[0] for n in target.base_names],
                                               np.where(np.isfinite(target.base_scores), target.base_scores,
                                                        np.nan), np.zeros(target.base_scores.shape, bool)), truth) \
                    if target.base_scores is not None and target.base_scores.shape[1] else None
                pooled = _pooled_order(target, others)
                row = {"kernel": kernel, "device": held.device_label,
                       "pooled": first_good(pooled, truth), "zero_shot": zs, "settings": {}, "inner": {}}
                for name in chosen:
                    settings = attrs.evolve(TuneSettings(**SETTINGS[name]), isolation="thread")
                    row["settings"][name] = evals_to_5pct(held, others, settings, args.seeds, args.budget)
                    logs = []
                    for inner_held in others:
                        inner_others = [f for f in others if f is not inner_held]
                        if not inner_others:
                            continue
                        for v in evals_to_5pct(inner_held, inner_others, settings, args.seeds, args.inner_budget):
                            logs.append(math.log2(v if v is not None else args.inner_budget + 1))
                    row["inner"][name] = float(np.mean(logs)) if logs else None
                scored = {k: v for k, v in row["inner"].items() if v is not None}
                pick = None if not chosen else chosen[0] if not scored or \
                    scored.get(chosen[0], math.inf) <= min(scored.values()) else min(scored, key=scored.get)
                row["pick"], row["picked"] = pick, (med(row["settings"][pick]) if pick else math.nan)
                rows.append(row)
                cells = "  ".join(f"{k}: {med(v):g}" for k, v in row["settings"].items())
                print(f"{kernel:<16}{held.device_label:<22} pooled {row['pooled']}  {cells}  nested pick: {pick} "
                      f"-> {row['picked']:g}  zero-shot {zs and zs['outer']} pick {zs and zs['pick']}  "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
    print()
    for name in [*chosen, "nested pick"] if chosen else []:  # --settings "": the zero-shot orders only
        values = [med(r["settings"][name]) if name != "nested pick" else r["picked"] for r in rows]
        pooled = [math.inf if r["pooled"] is None else r["pooled"] for r in rows]
        print(f"{name:<24} median {statistics.median(values):g}; no more than pooled on "
              f"{sum(v <= p for v, p in zip(values, pooled))}/{len(rows)}, fewer on "
              f"{sum(v < p for v, p in zip(values, pooled))}")
    picks = [r["pick"] for r in rows]
    print("nested picks:", {p: picks.count(p) for p in dict.fromkeys(picks)})
    zs_rows = [r["zero_shot"] for r in rows if r["zero_shot"]]
    for name in ZERO_SHOT:
        worse = sum((z["outer"][name] or math.inf) > (z["outer"]["pooled"] or math.inf) for z in zs_rows)
        better = sum((z["outer"][name] or math.inf) < (z["outer"]["pooled"] or math.inf) for z in zs_rows)
        print(f"zero-shot {name:<10} more evaluations than pooled on {worse}, fewer on {better} of {len(zs_rows)}")
    worse = sum((z["picked"] or math.inf) > (z["outer"]["pooled"] or math.inf) for z in zs_rows)
    better = sum((z["picked"] or math.inf) < (z["outer"]["pooled"] or math.inf) for z in zs_rows)
    print(f"zero-shot nested pick: more evaluations than pooled on {worse}, fewer on {better} of {len(zs_rows)}")
    print(f"wall time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=lambda v: None if v == math.inf else v))


if __name__ == "__main__":
    main()
