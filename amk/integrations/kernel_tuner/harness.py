"""Search strategies replayed on Kernel Tuner cache files in Kernel Tuner's own harness (``tune_cache``).

One implementation for ``bench/kernel_tuner_strategies.py`` and the Kernel Tuner baselines of
``amk simulate``: each run replays one cache with one strategy (a Kernel Tuner strategy name or a
strategy object such as ``AmkStrategy``) under ``max_fevals = budget``, and reports the distinct configs
it evaluated, in order. As Kernel Tuner's simulation counts them, a revisit is free; a config that fails
on the device is not in ``tune_cache``'s space at all.

Seeding (Kernel Tuner's strategies take no seed option): Python's and numpy's global generators are
seeded, and scipy's ``LatinHypercube``, which ``diff_evo``'s first population and ``bayes_opt``'s
initial sample build without a seed (fresh OS entropy), draws its seed from numpy's seeded generator
for the length of the run. With that a seed reproduces a run exactly.

Kernel Tuner quirks the numbers show (not corrected): ``simulated_annealing``'s schedule ends after 75%
of ``max_fevals`` with its default temperatures; ``genetic_algorithm`` stops after 90 generations, and
revisits a lot.
"""

from __future__ import annotations

import contextlib
import gzip
import inspect
import json
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from . import compat
from ._values import json_safe
from .recording import kernel_tuner_strategy

# The Kernel Tuner strategies amk is compared with by default (hybrid_vndx and adaptive_tabu_greywolf
# arrived in 1.4).
KERNEL_TUNER_BASELINES: tuple[str, ...] = ("diff_evo", "genetic_algorithm", "hybrid_vndx", "adaptive_tabu_greywolf",
                                           "simulated_annealing", "bayes_opt", "random_sample")


def available_strategies() -> list[str]:
    """The names of the installed Kernel Tuner's strategies."""
    compat.require_kernel_tuner()
    from kernel_tuner.interface import strategy_map

    return sorted(strategy_map)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Kernel Tuner's strategies for the block (see the module docstring)."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        from scipy.stats import qmc
    except ImportError:
        yield
        return
    original = qmc.LatinHypercube.__init__
    keyword = "rng" if "rng" in inspect.signature(original).parameters else "seed"

    def seeded_init(self, d, *args, **kwargs):
        if kwargs.get("rng") is None and kwargs.get("seed") is None:
            kwargs[keyword] = int(np.random.randint(2**31 - 1))
        original(self, d, *args, **kwargs)

    qmc.LatinHypercube.__init__ = seeded_init
    try:
        yield
    finally:
        qmc.LatinHypercube.__init__ = original


@attrs.frozen
class StrategyRun:
    """One strategy replayed on one cache with one seed."""

    strategy: str
    seed: int
    params: list[str]  # the tune parameters, in the cache's order
    visited: list[dict[str, Any]]  # each distinct config evaluated, in order: its parameters and ``time`` (ms)
    # or None for a failure (only when the space holds failures: never under tune_cache)
    results: int  # result dicts Kernel Tuner returned (revisits included)
    wall_s: float
    error: str | None = None  # the run raised this (its visited configs are what it did before)

    def times_ms(self) -> list[float | None]:
        return [v["time"] for v in self.visited]

    def evaluations_to(self, limit_ms: float) -> int | None:
        """The first evaluation (1-based) whose config ran within ``limit_ms``; None: never."""
        for i, value in enumerate(self.times_ms(), 1):
            if value is not None and value <= limit_ms:
                return i
        return None


def first_visits(results: Sequence[Mapping[str, Any]], params: Sequence[str], objective: str = "time"
                 ) -> list[dict[str, Any]]:
    """The first result of each distinct config, as ``{param: value, ..., "time": ms or None}``."""
    seen, out = set(), []
    for result in results:
        config = {p: json_safe(result[p]) for p in params}
        key = tuple(str(v) for v in config.values())
        if key in seen:
            continue
        seen.add(key)
        failed = compat.failure_marker(result, objective) is not None
        value = None if failed else json_safe(result.get(objective))
        out.append({**config, "time": value if isinstance(value, (int, float)) else None})
    return out


@attrs.frozen
class ReplayedCache:
    """A Kernel Tuner cache to replay, with what scoring a run on it needs. ``tune_cache`` reads only
    plain JSON: a ``.json.gz`` is uncompressed into a temporary folder that lives as long as this object."""

    path: Path  # the plain JSON file Kernel Tuner reads
    params: list[str]  # the tune parameters, in the cache's order
    valid_ms: list[float]  # Kernel Tuner's ``time`` of every config that passed: the space's distribution
    _folder: Any = attrs.field(default=None, eq=False, repr=False)  # the temporary folder of an uncompressed copy

    @classmethod
    def read(cls, path: Path) -> ReplayedCache:
        path, folder = Path(path), None
        if path.name.endswith(".gz"):
            folder = tempfile.TemporaryDirectory(prefix="amk-kt-")
            plain = Path(folder.name) / path.name[: -len(".gz")]
            plain = plain if plain.name.endswith(".json") else plain.with_name(plain.name + ".json")
            with gzip.open(path, "rb") as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            path = plain
        data = json.loads(path.read_text(encoding="utf-8"))
        valid = [float(e["time"]) for e in data["cache"].values()
                 if isinstance(e.get("time"), (int, float)) and not isinstance(e.get("time"), bool)]
        return cls(path, list(data["tune_params_keys"]), valid, folder)


class StopWithin:
    """A strategy that runs ``inner`` and ends its run, as a spent budget would, after the runner call
    that evaluated a config within ``limit_ms``: after that a strategy's best-so-far can improve by less
    than the margin left, so a benchmark that only scores how fast strategies get there can stop paying
    for the rest (a strategy that evaluates its whole sample in one call, as ``random_sample`` does, runs
    to its end). Kernel Tuner >= 1.4 (it lowers the budget object's ``max_fevals`` to what was spent)."""

    def __init__(self, inner: Any, limit_ms: float, objective: str = "time") -> None:
        self.inner, self.limit_ms, self.objective = inner, limit_ms, objective

    def tune(self, searchspace: Any, runner: Any, tuning_options: Any) -> Any:
        inner = kernel_tuner_strategy(self.inner)  # ConfigError for an unknown name, before anything runs
        budget = tuning_options.get("budget")
        if budget is None:
            from amk.core.errors import MissingDependencyError

            raise MissingDependencyError("stopping a replay within a limit needs kernel_tuner >= 1.4.")
        from kernel_tuner.util import StopCriterionReached

        inner_run, limit, objective = runner.run, self.limit_ms, self.objective
        evaluated: list[Any] = []  # what to return if the strategy lets the budget's exception through

        def run(parameter_space, options):
            results = inner_run(parameter_space, options)
            evaluated.extend(r for r in results if r is not None)
            if any(r is not None and compat.failure_marker(r, objective) is None
                   and isinstance(r.get(objective), (int, float)) and r[objective] <= limit for r in results):
                budget.max_fevals = budget.num_fevals  # Kernel Tuner ends the run as if its budget were spent
            return results

        runner.run = run
        try:
            return inner.tune(searchspace, runner, tuning_options)
        except StopCriterionReached:  # e.g. simulated_annealing, stopped at its very first evaluation
            return evaluated
        finally:
            del runner.run


def run_strategy(cache: ReplayedCache, strategy: str | Any, *, seed: int, budget: int, label: str | None = None,
                 stop_within_ms: float | None = None, **options: Any) -> StrategyRun:
    """Replay ``cache`` with ``strategy`` (a Kernel Tuner strategy name or object) for at most ``budget``
    evaluations, or (``stop_within_ms``) until a config within that time was evaluated; ``options`` go to
    Kernel Tuner (``strategy_options`` are merged). An exception of the run is reported in ``error``, not
    raised (Kernel Tuner's ``diff_evo`` and ``bayes_opt`` raise on spaces smaller than their first
    sample), and what the run evaluated before is then lost."""
    strategy_options = {"max_fevals": budget, **options.pop("strategy_options", {})}
    name = label or (strategy if isinstance(strategy, str) else type(strategy).__name__)
    if stop_within_ms is not None:
        strategy = StopWithin(strategy, stop_within_ms)
    started = time.perf_counter()
    error, results = None, []
    try:
        with seeded(seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Kernel Tuner's notes on its own runs; what matters is reported
            results, _env = compat.simulate_cache(cache.path, strategy=strategy, strategy_options=strategy_options,
                                                  quiet=True, **options)
    except Exception as exc:  # noqa: BLE001 (a strategy that raises is a result: reported with the run)
        error = f"{type(exc).__name__}: {exc}"
    return StrategyRun(name, seed, cache.params, first_visits(results, cache.params), len(results),
                       round(time.perf_counter() - started, 3), error)
