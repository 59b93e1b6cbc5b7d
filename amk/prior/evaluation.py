"""Offline evaluation of the prior: hold out a device (or a workload), train on the rest, rank the held-out
configs, and measure how good the ranked order is.

For each held-out workload + device group the candidates are its measured configs, ordered by the
ranker's scores (ties keep corpus order). Metrics: the fraction of the optimum reached by the best of
the first 1 / 5 / 20 configs (best latency / best latency among them), Spearman's rank correlation of
score and latency, NDCG@10 with gain = best latency / latency, and the number of configs measured in
ranked order until one is within 5% of the best.

The baseline ``pooled-replay`` orders configs by the mean, over the training groups that measured them
(the other devices, for a held-out device), of their latency relative to that group's best; configs
measured nowhere else come last, in corpus order.

Nothing is chosen with the held-out answer in hand: each ranker is fitted with the options it is given,
on the training rows of the fold only; the held-out latencies only score the order. (Which ranker is the
default of a new corpus was decided on these results across all dev folds, not per fold: docs/prior.md.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import attrs
import numpy as np

from amk.core.ranker import Ranker
from amk.core.records import MeasurementKind
from amk.prior.ranking import MIN_ROWS_TO_RANK, fit_prior
from amk.prior.training import DEFAULT_KINDS, Corpus, TrainingSet, load_points

POOLED_REPLAY = "pooled-replay"
SPLITS = ("device", "workload", "target")
METRICS = ("top1", "top5", "top20", "spearman", "ndcg10", "evals_to_5pct")


@attrs.frozen
class EvalResult:
    """How well one ranker ordered one held-out workload + device group."""

    ranker: str
    split: str  # "device", "workload" or "target" (one workload on one device): what was held out
    heldout: str  # the held-out device name, workload label, or "workload on device"
    workload: str  # the group's workload label (kind:name)
    device: str  # the group's device
    n_configs: int
    top1: float
    top5: float
    top20: float
    spearman: float
    ndcg10: float
    evals_to_5pct: int
    fit_seconds: float  # training time of the fold (0 for the baseline)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their average rank."""
    sorter = np.argsort(values, kind="mergesort")
    inverse = np.empty_like(sorter)
    inverse[sorter] = np.arange(len(values))
    ordered = values[sorter]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(starts)[inverse]
    bounds = np.r_[np.nonzero(starts)[0], len(values)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (0 when either side is constant)."""
    if len(a) < 2:
        return 0.0
    ra, rb = _average_ranks(np.asarray(a, dtype=np.float64)), _average_ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def ranking_metrics(scores: np.ndarray, latency: np.ndarray) -> dict[str, float]:
    """The metrics of ranking configs with true ``latency`` by ``scores`` (lower = measured first)."""
    scores = np.where(np.isnan(scores), np.inf, np.asarray(scores, dtype=np.float64))
    latency = np.asarray(latency, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    ranked = latency[order]
    best = latency.min()
    running = np.minimum.accumulate(ranked)
    gains = best / ranked
    discounts = 1.0 / np.log2(np.arange(2, min(10, len(ranked)) + 2))
    ideal = np.sort(best / latency)[::-1][: len(discounts)]
    finite = np.where(np.isfinite(scores), scores, np.finfo(np.float64).max)
    return {
        "top1": float(best / running[0]),
        "top5": float(best / running[min(5, len(running)) - 1]),
        "top20": float(best / running[min(20, len(running)) - 1]),
        "spearman": spearman(finite, latency),
        "ndcg10": float((gains[: len(discounts)] * discounts).sum() / (ideal * discounts).sum()),
        "evals_to_5pct": int(np.argmax(ranked <= 1.05 * best) + 1),
    }


def pooled_replay_scores(train: TrainingSet, config_index: np.ndarray) -> np.ndarray:
    """Each config's mean relative latency over the training groups that measured it; inf where none did."""
    n = len(train.columns.configs)
    counts = np.bincount(train.columns.config_index, minlength=n)
    sums = np.bincount(train.columns.config_index, weights=train.target, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    return mean[config_index]


def _folds(data: TrainingSet, split: str) -> Iterable[tuple[str, np.ndarray]]:
    """(held-out label, boolean mask of held-out rows) per fold."""
    cols = data.columns
    if split == "device":
        names = [d.name for d in cols.devices]
        row_names = np.asarray(names, dtype=object)[cols.device_index]
        for name in sorted(set(row_names.tolist())):
            yield name, row_names == name
    elif split == "workload":
        labels = np.asarray([f"{w.kind}:{w.name}" for w in cols.workloads], dtype=object)
        shown = {}
        for wi in np.unique(cols.workload_index):
            w = cols.workloads[wi]
            label = f"{w.kind}:{w.name}"
            same = [i for i, lab in enumerate(labels) if lab == label]
            # Two workloads with one label (different shapes) are told apart by their shape.
            shown[wi] = label if len(same) == 1 else f"{label} {w.shape}"
        for wi in np.unique(cols.workload_index):
            yield shown[wi], cols.workload_index == wi
    elif split == "target":
        # One workload on one device: what the corpus knows of the workload on other devices and of the
        # device on other workloads stays in training (a new kernel on a device the team has tuned before).
        for group in np.unique(data.groups):
            yield data.group_label(int(group)), data.groups == group
    else:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")


def _score_rows(prior, data: TrainingSet, rows: np.ndarray) -> np.ndarray:
    cols = data.columns
    X = prior.featurizer.transform_indexed(cols.workloads, cols.devices, cols.configs, cols.workload_index[rows],
                                           cols.device_index[rows], cols.config_index[rows])
    return np.asarray(prior.ranker.predict(X), dtype=np.float64)


def evaluate(corpus: Corpus | TrainingSet, *, splits: Sequence[str] = ("device",),
             rankers: Sequence[str | Ranker] = ("knn",), featurizer: str = "amk", baseline: bool = True,
             kinds: Sequence[MeasurementKind] = DEFAULT_KINDS, min_group: int = 2,
             progress: Callable[[int, int], None] | None = None) -> list[EvalResult]:
    """Leave-one-out evaluation of each ranker (and the pooled-replay baseline) on the corpus.

    Folds whose training side has fewer rows than the prior needs are left out; so are groups with
    fewer than ``min_group`` configs, where any order is perfect. ``progress(done, total)``, when given,
    is called before each fold and at the end with the folds done and the folds of every split.
    """
    data = corpus if isinstance(corpus, TrainingSet) else load_points(corpus, kinds=kinds)
    cols = data.columns
    results: list[EvalResult] = []
    total = sum(1 for split in splits for _ in _folds(data, split)) if progress else 0
    done = 0
    for split in splits:
        for heldout, test_mask in _folds(data, split):
            if progress:
                progress(done, total)
            done += 1
            train = data.take(~test_mask)
            test_groups = np.unique(data.groups[test_mask])
            group_rows = [np.nonzero(data.groups == g)[0] for g in test_groups]
            group_rows = [r for r in group_rows if len(r) >= min_group]
            if not group_rows or len(train) < MIN_ROWS_TO_RANK:
                continue
            scorers: list[tuple[str, float, object]] = []
            if baseline:
                scorers.append((POOLED_REPLAY, 0.0, None))
            for spec in rankers:
                start = time.perf_counter()
                prior = fit_prior(train, featurizer, spec)
                scorers.append((prior.ranker.name, time.perf_counter() - start, prior))
            for name, fit_seconds, prior in scorers:
                for rows in group_rows:
                    if prior is None:
                        scores = pooled_replay_scores(train, cols.config_index[rows])
                    else:
                        scores = _score_rows(prior, data, rows)
                    wi, di = cols.workload_index[rows[0]], cols.device_index[rows[0]]
                    w = cols.workloads[wi]
                    metrics = ranking_metrics(scores, cols.latency_us[rows])
                    results.append(EvalResult(
                        ranker=name, split=split, heldout=heldout, workload=f"{w.kind}:{w.name}",
                        device=cols.devices[di].name, n_configs=len(rows), fit_seconds=round(fit_seconds, 3),
                        **metrics,
                    ))
    if progress:
        progress(done, total)
    return results


def summarize(results: Sequence[EvalResult]) -> list[dict]:
    """The mean of each metric per (split, ranker), in first-seen order."""
    keys: dict[tuple[str, str], list[EvalResult]] = {}
    for r in results:
        keys.setdefault((r.split, r.ranker), []).append(r)
    out = []
    for (split, ranker), rs in keys.items():
        row = {"split": split, "ranker": ranker, "groups": len(rs)}
        for m in METRICS:
            row[m] = float(np.mean([getattr(r, m) for r in rs]))
        row["fit_seconds"] = float(np.mean([r.fit_seconds for r in rs]))
        out.append(row)
    return out
