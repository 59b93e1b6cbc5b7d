"""How much can any re-weighting of the training devices lift a held-out device's top-k? A ceiling check.

    python -m bench.prior_headroom --store jsonl:kt.jsonl [--k 5]      (see bench/RESULTS.md, "Prior")

For each workload and each device held out (leave-one-device-out, as `amk evaluate --split device`), the
held-out device's configs are scored from the OTHER devices' relative latencies of the same configs, as
pooled replay and amk's `replay` ranker do, and the top-k fraction (best latency / best among the first k)
is reported for:

- pooled replay (the equally weighted mean of the log relative latencies);
- the ORACLE of the replay family: the best top-k fraction over every device weighting on a simplex grid
  and every optimism (mean minus 0 to 3 weighted standard deviations), chosen by looking at the held-out
  answer. No ranker that reads the training devices' measurements of the same configs, however weighted
  or hedged, does better than this; where it equals pooled replay, the training devices hold no signal
  that lifts the held-out top-k.

Beside them, for the held-out configs within 5% of the optimum: how many there are, the least relative
latency any training device measured for them, and pooled replay's rank of the first of them.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from amk.core.config import open_store
from amk.prior.evaluation import ranking_metrics
from amk.prior.training import load_points

OPTIMISMS = np.linspace(0.0, 3.0, 13)
GRID_STEPS = 20  # simplex grid resolution per training device


def top_k_fraction(scores: np.ndarray, latency: np.ndarray, k: int) -> float:
    """``amk evaluate``'s top-k metric (k = 1, 5 or 20), from the same function."""
    return ranking_metrics(scores, latency)[f"top{k}"]


def simplex_grid(n: int, steps: int) -> np.ndarray:
    """Every weighting of ``n`` devices with weights in multiples of 1/steps that sum to 1."""
    if n == 1:
        return np.ones((1, 1))
    rows = [c for c in itertools.product(range(steps + 1), repeat=n - 1) if sum(c) <= steps]
    return np.array([[*c, steps - sum(c)] for c in rows], dtype=np.float64) / steps


def replay_scores(log_rel: np.ndarray, measured: np.ndarray, weights: np.ndarray, optimism: float) -> np.ndarray:
    """Weighted mean minus ``optimism`` weighted standard deviations over the devices that measured each
    config (rows: configs, columns: training devices); +inf where none did."""
    w = measured * weights[None, :]
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * np.where(measured, log_rel, 0.0)).sum(axis=1) / total
        var = (w * np.where(measured, (log_rel - mean[:, None]) ** 2, 0.0)).sum(axis=1) / total
    return np.where(total > 0, mean - optimism * np.sqrt(np.maximum(var, 0.0)), np.inf)


def headroom(data, k: int) -> list[dict]:
    cols = data.columns
    rows = []
    for wi in np.unique(cols.workload_index):
        in_workload = cols.workload_index == wi
        devices = sorted(np.unique(cols.device_index[in_workload]).tolist())
        for held in devices:
            train_devices = [d for d in devices if d != held]
            if not train_devices:
                continue
            test = in_workload & (cols.device_index == held)
            configs = cols.config_index[test]
            latency = cols.latency_us[test]
            log_rel = np.full((len(configs), len(train_devices)), np.nan)
            position = {c: i for i, c in enumerate(configs.tolist())}
            for j, d in enumerate(train_devices):
                sel = np.nonzero(in_workload & (cols.device_index == d))[0]
                for c, t in zip(cols.config_index[sel].tolist(), data.target[sel].tolist()):
                    if c in position:
                        log_rel[position[c], j] = np.log(t)
            measured = ~np.isnan(log_rel)
            log_rel = np.nan_to_num(log_rel)
            pooled = replay_scores(log_rel, measured, np.ones(len(train_devices)), 0.0)
            oracle, oracle_at = 0.0, None
            for weights in simplex_grid(len(train_devices), GRID_STEPS):
                for optimism in OPTIMISMS:
                    f = top_k_fraction(replay_scores(log_rel, measured, weights, optimism), latency, k)
                    if f > oracle:
                        oracle, oracle_at = f, (weights, optimism)
            near = latency <= 1.05 * latency.min()
            least_elsewhere = np.where(measured[near], log_rel[near], np.inf).min(axis=1)
            pooled_rank = np.empty(len(configs), dtype=np.int64)
            pooled_rank[np.argsort(pooled, kind="stable")] = np.arange(1, len(configs) + 1)
            rows.append({
                "workload": cols.workloads[wi].name, "heldout": cols.devices[held].name,
                "training": [cols.devices[d].name for d in train_devices], "configs": len(configs),
                "pooled": top_k_fraction(pooled, latency, k), "oracle": oracle,
                "oracle_weights": oracle_at[0].round(2).tolist(), "oracle_optimism": float(oracle_at[1]),
                "within_5pct": int(near.sum()), "their_best_elsewhere": float(np.exp(least_elsewhere.min())),
                "pooled_rank_of_first": int(pooled_rank[near].min()),
            })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="a store URL, e.g. jsonl:kt.jsonl")
    parser.add_argument("--k", type=int, choices=(1, 5, 20), default=5, help="the top-k metric (as amk evaluate)")
    args = parser.parse_args()
    data = load_points(open_store(args.store))
    rows = headroom(data, args.k)
    if not rows:
        print(f"{args.store}: no workload has measured PASS records on two or more devices; nothing to hold out",
              file=sys.stderr)
        return 1
    print(f"{'workload':<30} {'held out':<8} {'configs':>7} {'pooled':>7} {'oracle':>7}  "
          f"{'<=5%':>5} {'best elsewhere':>14} {'pooled rank':>11}  oracle at (weights, optimism)")
    for r in rows:
        print(f"{r['workload']:<30} {r['heldout']:<8} {r['configs']:>7} {r['pooled']:7.3f} {r['oracle']:7.3f}  "
              f"{r['within_5pct']:>5} {r['their_best_elsewhere']:13.2f}x {r['pooled_rank_of_first']:>11}  "
              f"{dict(zip(r['training'], r['oracle_weights']))}, {r['oracle_optimism']:.2f}")
    mean_pooled = np.mean([r["pooled"] for r in rows])
    mean_oracle = np.mean([r["oracle"] for r in rows])
    print(f"mean top-{args.k}: pooled replay {mean_pooled:.4f}; oracle over the replay family {mean_oracle:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
