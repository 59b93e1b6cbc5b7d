"""Scale bench of the prior on a synthetic corpus, beside the reference algorithm in the same run.

    nice python -m bench.prior [N]        (N records, default 1,000,000; see bench/RESULTS.md, "Prior")

amk: the corpus is read once into columns; load_points, fitting a prior (featurizer + ranker), ranking
10,000 candidate configs and a warm start are timed on it. The reference: the original module's
algorithm (re-implemented here from ../shared/seed/prior.txt, as a baseline only): rows as dicts, the
corpus re-filtered on every call, features built per row in Python, scikit-learn's
GradientBoostingRegressor trained per GPU, one predict call per candidate. Each figure is printed beside
the reference's and the bars of issue 4 (fit lightgbm <= 15 s, rank 10,000 <= 100 ms, warm_start <= 100 ms).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from amk.core.columns import CorpusColumns
from amk.core.records import Verdict
from amk.decode.schedule import ScheduleConfig
from amk.decode.shapes import SHAPE_FIELDS, ModelShape
from amk.decode.workload import DECODE_KIND, model_shape
from amk.featurizers.amk import schedule_features
from amk.prior.ranking import fit_prior, make_ranker, rank
from amk.prior.training import load_points
from amk.prior.warm_start import warm_start
from bench.synthetic import _decode_configs, synthetic_records

N_CANDIDATES = 10_000
DEVICE = "h100"


def best_of(repeats: int, func: Callable[[], Any]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


# ---- the reference algorithm (baseline only) -------------------------------------------------------

def reference_rows(columns: CorpusColumns) -> list[dict[str, Any]]:
    """The corpus as the original module's rows: decode records only, the shape inside the schedule."""
    rows = []
    for i in np.nonzero([columns.workloads[w].kind == DECODE_KIND for w in columns.workload_index])[0]:
        workload = columns.workloads[columns.workload_index[i]]
        latency, bound = columns.latency_us[i], columns.bound_us[i]
        verdict = Verdict(tuple(Verdict)[columns.verdict[i]]).value
        rows.append({
            "gpu": columns.devices[columns.device_index[i]].name, "correctness": verdict,
            "schedule": {**columns.configs[columns.config_index[i]], **{k: workload.shape[k] for k in SHAPE_FIELDS}},
            "latency_us": None if math.isnan(latency) else float(latency),
            "pct_of_roofline": None if math.isnan(latency) or math.isnan(bound) else 100.0 * latency / bound,
        })
    return rows


def reference_points(rows: list[dict[str, Any]], gpu: str) -> list[tuple[ModelShape, dict, float]]:
    points = []
    for row in rows:
        try:
            if row.get("correctness", "PASS") != "PASS" or row.get("gpu") != gpu:
                continue
            schedule = row["schedule"]
            if row.get("latency_us") is None:
                continue
            pct = row.get("pct_of_roofline")
            shape = ModelShape(**{k: int(schedule.get(k, 0) or 0) for k in SHAPE_FIELDS})
            points.append((shape, schedule, float(pct) if pct is not None else math.inf))
        except (TypeError, ValueError):
            continue
    return points


def reference_warm_start(shape: ModelShape, gpu: str, rows: list[dict[str, Any]], k: int = 3,
                         radius: float = 1.0) -> list[ScheduleConfig]:
    scored = [(shape.distance(s), pct, sch) for s, sch, pct in reference_points(rows, gpu)]
    near = [s for s in scored if s[0] <= radius]
    pool = near or scored
    pool.sort(key=lambda s: (round(s[0], 3), s[1]))
    seeds, seen = [], set()
    for _d, _p, schedule in pool:
        clean = {key: v for key, v in schedule.items() if key in ScheduleConfig.KEYS}
        key = repr(sorted((a, repr(b)) for a, b in clean.items()))
        if key in seen:
            continue
        seen.add(key)
        seeds.append(ScheduleConfig.from_dict(clean))
        if len(seeds) >= k:
            break
    return seeds


class ReferenceRanker:
    def __init__(self, points: list[tuple[ModelShape, dict, float]]) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        usable = [p for p in points if math.isfinite(p[2])]
        X = [s.feature_vec() + schedule_features(sch) for s, sch, _ in usable]
        y = [pct for _, _, pct in usable]
        self.model = GradientBoostingRegressor(n_estimators=120, max_depth=3, learning_rate=0.08, subsample=0.9,
                                               random_state=0).fit(X, y)

    def score(self, shape: ModelShape, config: dict) -> float:
        return float(self.model.predict([shape.feature_vec() + schedule_features(config)])[0])


def reference_rank(candidates: list[dict], shape: ModelShape, ranker: ReferenceRanker) -> list[dict]:
    scored = [(ranker.score(shape, c), i, c) for i, c in enumerate(candidates)]
    scored.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in scored]


# ---- the bench ---------------------------------------------------------------------------------------

def line(what: str, amk_s: float, ref_s: float | None = None, bar_s: float | None = None) -> None:
    text = f"{what:<44} amk {amk_s * 1000:>10.1f} ms"
    if ref_s is not None:
        text += f"   reference {ref_s * 1000:>10.1f} ms   (x{ref_s / amk_s:,.0f} faster)"
    if bar_s is not None:
        text += f"   bar <= {bar_s * 1000:.0f} ms: {'met' if amk_s <= bar_s else 'NOT met'}"
    print(text, flush=True)


def main(n: int, rankers: tuple[str, ...] = ("lightgbm", "knn", "gbr")) -> None:
    print(f"# {n:,} synthetic records (bench/synthetic.py, seed 0); {N_CANDIDATES:,} candidates; device {DEVICE}")
    start = time.perf_counter()
    columns = CorpusColumns.from_records(synthetic_records(n, seed=0))
    print(f"corpus read into columns: {time.perf_counter() - start:.1f} s "
          f"({len(columns.workloads)} workloads, {len(columns.configs)} configs, {len(columns.devices)} devices)")
    t_points, training = best_of(1, lambda: load_points(columns))
    print(f"load_points: {t_points * 1000:.0f} ms, {len(training):,} measured PASS rows, "
          f"{len(training.group_keys):,} workload+device groups")

    target = next(w for w in columns.workloads if w.kind == DECODE_KIND)
    shape = model_shape(target)
    candidates = _decode_configs(np.random.default_rng(1), N_CANDIDATES)

    rows = reference_rows(columns)
    t_ref_warm, _ = best_of(1, lambda: reference_warm_start(shape, DEVICE, rows))
    t_warm, seeds = best_of(5, lambda: warm_start(target, DEVICE, columns))
    line("warm_start (corpus loaded)", t_warm, t_ref_warm, 0.1)

    t_ref_fit, ref_ranker = best_of(1, lambda: ReferenceRanker(reference_points(rows, DEVICE)))
    t_ref_rank, _ = best_of(1, lambda: reference_rank(candidates, shape, ref_ranker))

    for ranker in rankers:
        t_fit, prior = best_of(1, lambda ranker=ranker: fit_prior(training, "amk", ranker))
        bar = 15.0 if ranker == "lightgbm" else None
        line(f"fit {ranker} on all {len(training):,} rows", t_fit, None, bar)
        repeats = 1 if ranker == "knn" else 3  # knn's query cost grows with its training rows
        t_rank, _ = best_of(repeats, lambda prior=prior: rank(candidates, target, DEVICE, prior=prior))
        line(f"rank {N_CANDIDATES:,} candidates ({ranker})", t_rank, t_ref_rank, 0.1)
    line(f"reference fit (GBR, {DEVICE} decode rows only)", t_ref_fit)

    device_rows = load_points(columns, device=DEVICE)
    t_fit_dev, _ = best_of(1, lambda: make_ranker(columns, device=DEVICE, ranker="gbr"))
    line(f"fit gbr on {DEVICE} rows only ({len(device_rows):,})", t_fit_dev, t_ref_fit)
    print(f"seeds: {[round(s.latency_us, 1) for s in seeds]} us from {[s.device for s in seeds]}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The prior at scale, beside the reference algorithm.")
    parser.add_argument("records", nargs="?", type=int, default=1_000_000, help="synthetic corpus size")
    parser.add_argument("--rankers", default="lightgbm,knn,gbr", help="comma-separated rankers to fit and time")
    args = parser.parse_args()
    main(args.records, tuple(r for r in args.rankers.split(",") if r))
