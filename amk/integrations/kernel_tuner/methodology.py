"""The autotuning methodology's performance score of a search strategy on one search space.

Source: Willemsen, van Nieuwpoort, van Werkhoven, "A methodology for comparing optimization algorithms for
auto-tuning", Future Generation Computer Systems 159 (2024), doi:10.1016/j.future.2024.05.021, as
implemented in the ``autotuning-methodology`` package 1.1.0 (file and function names below). This is a
reimplementation of its function-evaluations variant; cross-checked against the package on
pnpoly RTX 3090 (same cutoff range, random curve equal to 0.0, a run scoring 0.7442 in both; see
``bench/RESULTS.md``). Minimisation; any unit, as long as the distribution and the runs share it.

- ``dist``: the objective of every valid config of the space, ascending; ``N = len(dist)``.
- Random search without replacement, expected best after ``k`` evaluations:
  ``r(k) = dist[::-1][min(N - 1, round(k (N + 1) / (k + 1)))]`` (``baseline.py``
  ``RandomSearchCalculatedBaseline._redwhite_index``; the package then smooths ``r`` with a monotone
  cubic over the range, which at whole ``k`` returns the same values).
- The range of ``k``: from the evaluations random search needs to reach 1% of the way from the median
  to the optimum to those it needs for 95% (``searchspace_statistics.py`` ``cutoff_point``:
  ``target = opt + (median - opt)(1 - p)``; ``i`` = the first index of ``dist[::-1]`` at or below it, one
  less when that is the optimum itself; ``k = ceil(i / (N + 1 - i))``), widened when under 2 apart.
  amk clips the range to the budget: the score is over the evaluations every strategy was given (the
  package extends a curve that ends early flat, and so does amk within the budget).
- The strategy's curve: per ``k``, the median over runs (seeds) of the rank in ``dist`` of the best
  value found in the first ``k`` evaluations (``curves.py`` ``get_curve_over_fevals``); a run that
  stopped early keeps its last best; before a run's first passing config its best is the worst value.
- ``P(k) = (b(k) - r(k)) / (opt - r(k))``: 0 is random search, 1 the optimum, below 0 worse than random
  (``baseline.py`` ``get_standardised_curves``); the score is the mean of ``P`` over the range
  (``report_experiments.py`` ``get_strategy_scores``). Where ``r(k)`` is the optimum itself (only in
  tiny spaces) ``P`` is undefined (the package raises); amk leaves those ``k`` out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np


@attrs.frozen
class MethodologyScore:
    score: float  # mean standardised performance over the range: 0 = random search, 1 = the optimum;
    # nan when random search is expected at the optimum over the whole range (a tiny space)
    first: int  # the range of evaluations scored, inclusive
    last: int


def _sorted(dist: Sequence[float]) -> np.ndarray:
    values = np.sort(np.asarray([v for v in dist if v is not None and math.isfinite(v)], dtype=float))
    if len(values) < 2:
        raise ValueError(f"the methodology's score needs at least two valid configs in the space, got {len(values)}")
    return values


def random_search_curve(dist: Sequence[float], ks: Sequence[int]) -> np.ndarray:
    """The expected best of ``k`` uniform draws without replacement, for each ``k`` in ``ks``."""
    worst_first = _sorted(dist)[::-1]
    n = len(worst_first)
    return np.array([worst_first[min(n - 1, round(k * (n + 1) / (k + 1)))] for k in ks])


def _cutoff_evaluations(ascending: np.ndarray, fraction: float) -> int:
    worst_first = ascending[::-1]
    n, optimum = len(ascending), ascending[0]
    target = optimum + (float(np.median(ascending)) - optimum) * (1 - fraction)
    i = int(np.argmax(worst_first <= target))
    if fraction != 1.0 and worst_first[i] == optimum and i > 0:
        i -= 1
    return math.ceil(i / (n + 1 - i))


def score_range(dist: Sequence[float], budget: int, *, start: float = 0.01, end: float = 0.95) -> tuple[int, int]:
    """The evaluations the score averages over (both ends included), clipped to ``budget``.

    (The package's widening step takes the smaller of the widened end and the optimum's objective value,
    comparing evaluations with a latency; amk widens by the margin only.)"""
    ascending = _sorted(dist)
    first, last = _cutoff_evaluations(ascending, start), _cutoff_evaluations(ascending, end)
    if last - first < 2:
        first, last = (first, last + 2) if first == 0 else (first - 1, last + 1)
    first = max(first, 1)
    return min(first, budget), max(min(last, budget), min(first, budget))


def _best_so_far(run: Sequence[float | None], ks: np.ndarray, worst: float) -> np.ndarray:
    values = np.asarray([np.inf if v is None or not math.isfinite(v) else v for v in run] or [np.inf], dtype=float)
    best = np.minimum.accumulate(values)
    best = np.where(np.isfinite(best), best, worst)
    return best[np.minimum(ks, len(best)) - 1]


def performance_score(runs: Sequence[Sequence[float | None]], dist: Sequence[float], budget: int) -> MethodologyScore:
    """The score of a strategy from its ``runs`` (per seed, the objective of each distinct config in the
    order evaluated; None for a failure) on the space whose valid objectives are ``dist``."""
    if not runs:
        raise ValueError("the methodology's score needs at least one run")
    ascending = _sorted(dist)
    first, last = score_range(ascending, budget)
    ks = np.arange(first, last + 1)
    ranks = np.stack([np.searchsorted(ascending, _best_so_far(run, ks, ascending[-1]), side="left")
                      for run in runs])
    curve = ascending[np.clip(np.round(np.median(ranks, axis=0)).astype(int), 0, len(ascending) - 1)]
    baseline = random_search_curve(ascending, ks)
    informative = baseline > ascending[0]  # where random search itself is at the optimum, P is 0 / 0
    if not informative.any():
        return MethodologyScore(math.nan, int(first), int(last))
    standardised = (curve - baseline)[informative] / (ascending[0] - baseline[informative])
    return MethodologyScore(float(np.mean(standardised)), int(first), int(last))
