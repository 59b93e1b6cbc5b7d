"""``amk simulate``: rank tuning strategies on recorded Kernel Tuner caches, without hardware.

A directory holds the caches of one kernel on several devices (or one sub-folder per kernel). Each
device in turn is held out: the other devices' files become the corpus, the held-out file the replay
backend, and every strategy is scored by the evaluations it needs until it has measured a config within
5% (and 1%) of the held-out device's optimum. Strategies, all under the same budget:

- ``amk``: the tune loop (warm start, prior, surrogate policy), median over seeds;
- ``random``: uniform draws without replacement, its exact expectation (n + 1) / (m + 1) for m good
  configs among n (not simulated, so no seed noise);
- ``tpe``: Optuna's TPE sampler over the same knobs (when optuna is installed), median over seeds;
  draws outside the recorded space or repeating a config cost no evaluation;
- ``pooled``: the other devices' configs in order of their mean relative time (failures last);
- ``kt:NAME`` (when kernel_tuner is installed; by default its strategies in
  :data:`~amk.integrations.kernel_tuner.harness.KERNEL_TUNER_BASELINES`): Kernel Tuner's own strategy
  replaying the held-out cache in its simulation mode (``tune_cache``, ``max_fevals`` = the budget,
  seeded as :mod:`amk.integrations.kernel_tuner.harness` says), median over seeds. Its configs are judged
  by the same latencies as the others'; its search space leaves out the configs that failed on the device
  (``tune_cache`` does), where the other strategies can spend evaluations on them.

Each row also has the autotuning methodology's performance score over the budget
(:mod:`amk.integrations.kernel_tuner.methodology`: 0 = random search, 1 = the optimum, from the
strategy's best-so-far curve, median over seeds). ``random`` scores 0 by definition. A run that stopped
early (amk and tpe stop once within 1% of the optimum) keeps its best for the rest of the budget.

Every latency here is replayed (recorded on hardware by someone else), not measured by this run.

Nothing is picked with the held-out answer in hand: each strategy sees only the other devices' caches
and its own measurements (:func:`held_out_target`); the held-out truth only scores a run, and stops it
once it has measured a config within 1% of the optimum (the picks before that are the same with or
without the stop: tests/test_tune_cli.py). amk's settings are its defaults; where they were chosen by
looking at results, the choice was made by nested leave-one-device-out (bench/search_nested.py).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.columns import CorpusColumns, config_key
from amk.core.errors import AmkError, ImportFormatError, ValidationError
from amk.core.records import Record, Verdict
from amk.core.store import CorpusProblem
from amk.tuning.loop import tune
from amk.tuning.settings import TuneSettings
from amk.tuning.target import TuneTarget

log = logging.getLogger("amk.simulate")

CACHE_SUFFIXES = (".json", ".json.gz")
STRATEGIES: tuple[str, ...] = ("amk", "random", "tpe", "pooled")
KERNEL_TUNER_PREFIX = "kt:"  # kt:NAME runs Kernel Tuner's strategy NAME
THRESHOLDS = {"5pct": 1.05, "1pct": 1.01}


@attrs.frozen
class SimulationRow:
    kernel: str
    device: str
    strategy: str
    evals_to_5pct: float | None  # None: not reached within the budget
    evals_to_1pct: float | None
    per_seed_5pct: list[int | None] | None  # None for strategies without seeds
    per_seed_1pct: list[int | None] | None
    n_configs: int
    optimum_us: float
    budget: int
    note: str = ""
    score: float | None = None  # the autotuning methodology's performance score over the budget
    # Best-so-far latency over the optimum after each evaluation (1.0: the optimum found; None: no config
    # passed yet), up to the budget or the evaluation that reached 1% (then flat): the median over seeds.
    curve: list[float | None] | None = None


@attrs.frozen
class CacheFile:
    path: Path
    device_label: str
    records: list[Record]
    problems: list[CorpusProblem]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_kernel_dirs(root: Path) -> dict[str, list[Path]]:
    """Kernel label -> its cache files: ``root`` itself when it holds caches, else each sub-folder that does."""
    if not root.is_dir():
        raise AmkError(f"--caches {str(root)!r} is not a directory; give a folder of Kernel Tuner cache files.")

    def caches(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(CACHE_SUFFIXES))

    direct = caches(root)
    if direct:
        return {root.resolve().name or str(root.resolve()): direct}  # '.' has no name of its own
    groups = {sub.name: caches(sub) for sub in sorted(root.iterdir()) if sub.is_dir()}
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise AmkError(f"{root} holds no Kernel Tuner cache files (*.json, *.json.gz), nor sub-folders with any.")
    return groups


def _refuse_mixed_kernels(folder: str, files: Sequence[CacheFile]) -> None:
    """AmkError when the caches of one folder are of several kernels: each would be held out against the
    others' measurements of another kernel, as if they were other devices."""
    kernels: dict[str, list[str]] = {}
    for f in files:
        workload = f.records[0].workload
        kernels.setdefault(f"{workload.kind}:{workload.name}", []).append(f.path.name)
    if len(kernels) > 1:
        listed = "; ".join(f"{k}: {', '.join(names)}" for k, names in kernels.items())
        raise AmkError(f"{folder}: the caches are of {len(kernels)} kernels ({listed}); simulate holds out the devices "
                       "of one kernel: put each kernel's caches in a sub-folder of its own and pass the folder "
                       "above them as --caches.")


def load_cache(path: Path, device: str | None = None) -> CacheFile:
    """The records of one cache; ``device`` names the device of a cache whose device_name is empty (or
    overrides it). A cache that names no device, with no ``device``, takes its file name as the device, and
    a note says so."""
    import warnings

    from amk.core.errors import LeftOutWarning
    from amk.formats import read_file

    named_by_file = False
    try:
        items = list(read_file(path, device=device))
    except ImportFormatError as exc:
        if device or "names no device" not in str(exc):
            raise
        warnings.warn(f"{path} names no device; simulated as device {_stem(path)!r} (its file name); "
                      f"--device {path.name}=NAME names it", LeftOutWarning, stacklevel=2)
        items, named_by_file = list(read_file(path, device=_stem(path))), True
    records = [i.record for i in items if i.record is not None]
    problems = [i.problem for i in items if i.problem is not None]
    if not records:
        raise AmkError(f"{path}: no usable entries; check the file with 'amk corpus validate'.")
    for item in items:
        if item.note is not None and not (named_by_file and "from --device" in item.note.message):  # said above
            warnings.warn(f"{item.note.where}: {item.note.message}", LeftOutWarning, stacklevel=2)
    if problems:
        warnings.warn(f"{path}: {len(problems)} entr{'y' if len(problems) == 1 else 'ies'} that could not be read "
                      f"left out of the simulation (the first: {problems[0].where}: {problems[0].reason}); "
                      f"'amk corpus validate {path}' lists each", LeftOutWarning, stacklevel=2)
    return CacheFile(path, records[0].device.name, records, problems)


def _median(values: Sequence[int | None]) -> float | None:
    """The median, counting 'never' as worse than any number; None when the median itself is 'never'."""
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    n = len(ordered)
    mid = ordered[(n - 1) // 2], ordered[n // 2]
    if mid[0] is None or mid[1] is None:
        return None
    return (mid[0] + mid[1]) / 2


def _pooled_order(target: TuneTarget, others: Sequence[CacheFile]) -> np.ndarray:
    """Candidates by the mean, over the other devices, of latency / that device's best (failures last)."""
    rel = np.zeros(len(target.candidates))
    for other in others:
        latencies = {config_key(r.config): r.measurement.latency_us for r in other.records
                     if r.measurement.verdict is Verdict.PASS and r.workload == target.workload}
        best = min(latencies.values(), default=None)
        col = np.full(len(target.candidates), np.inf)
        if best:
            for i, c in enumerate(target.candidates):
                lat = latencies.get(config_key(target.backend.record_config(target.workload, c)))
                if lat is not None:
                    col[i] = lat / best
        rel += col
    return np.argsort(rel, kind="stable")


def _best_so_far(latencies: Sequence[float]) -> list[float]:
    """The running minimum (NaN, a failure, counts as +inf)."""
    values = np.nan_to_num(np.asarray(latencies, dtype=np.float64), nan=np.inf)
    return np.minimum.accumulate(values).tolist() if len(values) else []


def median_curve(curves: Sequence[Sequence[float]], optimum: float, budget: int) -> list[float | None]:
    """The median over runs of best-so-far latencies, relative to ``optimum``, for evaluations 1..budget;
    a run that stopped early (it reached the target, or ran out of configs) keeps its last value; None
    where the median run had no passing config yet."""
    if not any(len(c) for c in curves):
        return []
    length = budget
    grid = np.full((len(curves), length), np.inf)
    for row, curve in zip(grid, curves):
        if len(curve):
            row[: len(curve)] = curve[:length]
            row[len(curve):] = curve[-1]
    median = np.median(grid, axis=0) / optimum
    return [None if not math.isfinite(v) else round(float(v), 6) for v in median]


def _first_hit(order: Sequence[int], good: np.ndarray, budget: int) -> int | None:
    for position, i in enumerate(order[:budget], 1):
        if good[i]:
            return position
    return None


def _tpe_runs(target: TuneTarget, truth: np.ndarray, thresholds: dict[str, float], seeds: Sequence[int],
              budget: int, sequences: list[list[float | None]] | None = None) -> dict[str, list[int | None]]:
    """Evaluations to each threshold per seed; ``sequences`` receives each seed's values in order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, list[int | None]] = {k: [] for k in thresholds}
    for seed in seeds:
        sampler = optuna.samplers.TPESampler(seed=seed)
        study = optuna.create_study(sampler=sampler, direction="minimize")
        hits: dict[str, int | None] = {k: None for k in thresholds}
        seen: dict[str, float | None] = {}
        visited: list[float | None] = []
        evaluations = draws = 0
        while evaluations < budget and draws < 20 * budget and any(v is None for v in hits.values()):
            draws += 1
            trial = study.ask()
            params = {k.name: trial.suggest_categorical(k.name, list(k.choices)) for k in target.space.knobs}
            key = config_key(target.space.canonical(params)) if target.space.is_valid(params) else None
            i = target.index.get(key) if key else None
            if i is None:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            if key not in seen:
                evaluations += 1
                value = truth[i]
                seen[key] = None if math.isnan(value) else float(value)
                visited.append(seen[key])
                for name, limit in thresholds.items():
                    if hits[name] is None and seen[key] is not None and seen[key] <= limit:
                        hits[name] = evaluations
            value = seen[key]
            if value is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, value)
        for name in thresholds:
            out[name].append(hits[name])
        if sequences is not None:
            sequences.append(visited)
    return out


def held_out_target(held: CacheFile, others: Sequence[CacheFile], settings: TuneSettings, *,
                    featurizer: Any = "amk", ranker: Any = "knn") -> tuple[TuneTarget, np.ndarray]:
    """The tune target of the ``held`` device with only ``others`` as its corpus, and the held-out truth:
    each candidate's recorded latency in us (NaN: failed or absent).

    The target (search space, prior, transfer sources, zero-shot order, seeds) is built from ``others``
    alone; the truth is what the replay backend answers, read only to score a run afterwards (and to stop
    it once a config within 1% of the optimum was measured, which changes no pick before that).
    """
    from amk.backends.replay import ReplayBackend

    corpus = CorpusColumns.from_records(r for f in others for r in f.records)
    workload, device = held.records[0].workload, held.records[0].device
    backend = ReplayBackend.from_records(held.records)
    target = TuneTarget.prepare(workload, device, backend, corpus, settings, featurizer=featurizer, ranker=ranker)
    table = backend.data.table(workload, device)
    truth = np.full(len(target.candidates), np.nan)
    for i, c in enumerate(target.candidates):
        rec = table.get(config_key(backend.record_config(workload, c)))
        if rec is not None and rec.measurement.verdict is Verdict.PASS:
            truth[i] = rec.measurement.latency_us
    if np.isnan(truth).all():
        raise AmkError(f"{held.path}: no config passed; nothing to tune towards.")
    return target, truth


def kernel_tuner_strategies() -> list[str]:
    """``kt:NAME`` for every Kernel Tuner strategy installed (empty without kernel_tuner)."""
    try:
        from amk.integrations.kernel_tuner.harness import available_strategies
        return [KERNEL_TUNER_PREFIX + name for name in available_strategies()]
    except (ImportError, AmkError):
        return []


def default_strategies() -> list[str]:
    """amk's own strategies, and Kernel Tuner's baselines when kernel_tuner is installed."""
    from amk.integrations.kernel_tuner.harness import KERNEL_TUNER_BASELINES

    installed = set(kernel_tuner_strategies())
    return [*STRATEGIES, *(s for s in (KERNEL_TUNER_PREFIX + n for n in KERNEL_TUNER_BASELINES) if s in installed)]


def _kernel_tuner_runs(cache: Any, name: str, target: TuneTarget, truth: np.ndarray, limits: dict[str, float],
                       seeds: Sequence[int], budget: int, sequences: list[list[float | None]]
                       ) -> tuple[dict[str, list[int | None]], list[str]]:
    """Kernel Tuner's strategy ``name`` on the held-out ``cache`` (a ReplayedCache), its configs judged by
    ``truth``: evaluations to each limit per seed (never for a run that raised), and the errors of the
    runs that raised (``sequences`` receives the other runs' values, in order)."""
    from amk.integrations.kernel_tuner.harness import run_strategy

    out: dict[str, list[int | None]] = {k: [] for k in limits}
    errors = []
    for seed in seeds:
        run = run_strategy(cache, name, seed=seed, budget=budget)
        if run.error:  # no curve to score (counted as never within the limits)
            errors.append(run.error)
            for key in limits:
                out[key].append(None)
            continue
        values = []
        for visited in run.visited:
            config = {p: visited[p] for p in run.params}
            i = target.index.get(config_key(target.space.canonical(config)))
            values.append(None if i is None or math.isnan(truth[i]) else float(truth[i]))
        sequences.append(values)
        for key, limit in limits.items():
            out[key].append(next((e for e, v in enumerate(values, 1) if v is not None and v <= limit), None))
    return out, errors


def _score(sequences: Sequence[Sequence[float | None]], truth: np.ndarray, budget: int) -> float | None:
    from amk.integrations.kernel_tuner.methodology import performance_score

    valid = truth[~np.isnan(truth)]
    if not sequences or len(valid) < 2:
        return None
    return performance_score(sequences, valid, budget).score


def runnable_strategies(strategies: Sequence[str] | None) -> list[str]:
    """``strategies`` (None: :func:`default_strategies`) less the baselines whose package is not installed
    (each left out with a warning). ValidationError naming the strategies for a name none of them has."""
    strategies = default_strategies() if strategies is None else list(strategies)
    wanted_kt = [s for s in strategies if s.startswith(KERNEL_TUNER_PREFIX)]
    installed_kt = kernel_tuner_strategies() if wanted_kt else []
    if wanted_kt and not installed_kt:
        log.warning("kernel_tuner is not installed (pip install 'amk[kernel-tuner]'); the Kernel Tuner "
                    "baselines %s are left out", wanted_kt)
        strategies = [s for s in strategies if s not in wanted_kt]
    unknown = sorted(set(strategies) - set(STRATEGIES) - set(installed_kt))
    if unknown:
        raise ValidationError(f"unknown strategies {unknown}; strategies are {list(STRATEGIES) + installed_kt}.")
    if "tpe" in strategies:
        try:
            import optuna  # noqa: F401
        except ImportError:
            log.warning("optuna is not installed (pip install 'amk[optuna]'); the tpe baseline is left out")
            strategies = [s for s in strategies if s != "tpe"]
    return strategies


def simulate(root: Path, *, budget: int = 500, seeds: int = 5, strategies: Sequence[str] | None = None,
             settings: TuneSettings | None = None, featurizer: Any = "amk", ranker: Any = "knn",
             on_row: Callable[[SimulationRow], None] | None = None,
             devices: Mapping[str, str] | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[SimulationRow]:
    """Every held-out device of every kernel under ``root``, every strategy (see the module docstring;
    ``strategies`` None: :func:`default_strategies`). ``devices`` maps a cache's file name (or its name
    without .json/.json.gz) to its device name.

    ``on_row`` receives each row as it is done; ``progress(done, total)`` the count of rows done and to do.
    """

    strategies = runnable_strategies(strategies)
    # Replays in memory (a backend built from records, which a worker process could not rebuild from its
    # options); nothing here can crash or hang, so a worker process would only cost time.
    settings = attrs.evolve(settings or TuneSettings(), isolation="thread")
    seed_list = list(range(seeds))
    rows: list[SimulationRow] = []
    kernels = find_kernel_dirs(root)
    total_rows = sum(len(paths) for paths in kernels.values()) * len(strategies)
    if progress:
        progress(0, total_rows)
    for kernel, paths in kernels.items():
        files = [load_cache(p, (devices or {}).get(p.name) or (devices or {}).get(_stem(p))) for p in paths]
        _refuse_mixed_kernels(kernel, files)
        labels = [f.device_label for f in files]
        if len(set(labels)) != len(labels):  # two files of one device: tell them apart by file name
            files = [attrs.evolve(f, device_label=_stem(f.path)) for f in files]
        if len(files) < 2:
            raise AmkError(f"{kernel}: simulate needs caches of at least two devices to hold one out; found {len(files)}.")
        for held in files:
            others = [f for f in files if f is not held]
            started = time.monotonic()
            target, truth = held_out_target(held, others, settings, featurizer=featurizer, ranker=ranker)
            optimum = float(np.nanmin(truth))
            limits = {name: optimum * factor for name, factor in THRESHOLDS.items()}
            good = {name: np.nan_to_num(truth, nan=np.inf) <= limit for name, limit in limits.items()}
            n = len(target.candidates)

            def row(strategy: str, per_seed: dict[str, list[int | None]] | None,
                    values: dict[str, float | None], note: str = "", *, kernel: str = kernel,
                    device: str = held.device_label, n: int = n, optimum: float = optimum,
                    truth: np.ndarray = truth, sequences: list[list[float | None]] | None = None,
                    score: float | None = None, curves: list[list[float]] | None = None) -> None:
                # The score and the curve come from what each run visited, in order (None: not a pass).
                score = _score(sequences, truth, budget) if sequences else score
                if curves is None and sequences:
                    curves = [_best_so_far([math.nan if v is None else v for v in seq]) for seq in sequences]
                r = SimulationRow(kernel, device, strategy, values["5pct"], values["1pct"],
                                  per_seed["5pct"] if per_seed else None, per_seed["1pct"] if per_seed else None,
                                  n, optimum, budget, note, score,
                                  median_curve(curves, optimum, budget) if curves else None)
                rows.append(r)
                if on_row:
                    on_row(r)

            replayed = None
            seeds_note = f"median of {len(seed_list)} seed{'s' if len(seed_list) != 1 else ''}"
            for strategy in strategies:
                sequences: list[list[float | None]] = []
                if strategy == "amk":
                    per_seed: dict[str, list[int | None]] = {k: [] for k in THRESHOLDS}
                    for s in seed_list:
                        result = tune(target, settings, seed=s, budget=budget, minutes=0, stop_at_us=min(limits.values()))
                        for name, limit in limits.items():
                            per_seed[name].append(result.evaluations_to(limit))
                        sequences.append([t.latency_us if t.verdict == Verdict.PASS.value else None
                                          for t in result.state.trials])
                    row("amk", per_seed, {k: _median(v) for k, v in per_seed.items()}, seeds_note,
                        sequences=sequences)
                elif strategy == "random":
                    values = {k: (n + 1) / (int(g.sum()) + 1) if g.any() else None for k, g in good.items()}
                    draws = [_best_so_far(truth[np.random.default_rng(s).permutation(n)[:budget]]) for s in seed_list]
                    row("random", None, values, f"exact expectation; curve: {seeds_note}", score=0.0, curves=draws)
                elif strategy == "tpe":
                    per_seed = _tpe_runs(target, truth, limits, seed_list, budget, sequences)
                    row("tpe", per_seed, {k: _median(v) for k, v in per_seed.items()}, seeds_note,
                        sequences=sequences)
                elif strategy == "pooled":
                    order = _pooled_order(target, others)
                    sequences.append([None if math.isnan(truth[i]) else float(truth[i]) for i in order[:budget]])
                    row("pooled", None, {k: _first_hit(order, g, budget) for k, g in good.items()},
                        sequences=sequences)
                elif strategy.startswith(KERNEL_TUNER_PREFIX):
                    from amk.integrations.kernel_tuner.harness import ReplayedCache

                    replayed = replayed or ReplayedCache.read(held.path)  # uncompressed once per held-out file
                    per_seed, errors = _kernel_tuner_runs(replayed, strategy[len(KERNEL_TUNER_PREFIX):], target,
                                                          truth, limits, seed_list, budget, sequences)
                    note = f"{seeds_note}; tune_cache (failed configs not in its space)"
                    row(strategy, per_seed, {k: _median(v) for k, v in per_seed.items()},
                        note + (f"; {len(errors)} run(s) raised: {errors[0]}" if errors else ""),
                        sequences=sequences)
                if progress:
                    progress(len(rows), total_rows)
            log.info("%s %s done in %.1f s", kernel, held.device_label, time.monotonic() - started)
    return rows


def _within_budget(row: SimulationRow) -> float:
    """Evaluations to 5%, or inf when never within the row's budget (an expectation beyond it included)."""
    value = row.evals_to_5pct
    return math.inf if value is None or value > row.budget else value


def summarize(rows: Sequence[SimulationRow]) -> dict[str, Any]:
    """Per target whether amk needed fewer (and no more) evaluations to 5% than every baseline; against each
    baseline, on how many targets amk needed fewer, as many or more evaluations, or neither reached 5%
    within the budget ("never": an expectation beyond the budget counts as never)."""
    targets: dict[tuple[str, str], dict[str, SimulationRow]] = {}
    for r in rows:
        targets.setdefault((r.kernel, r.device), {})[r.strategy] = r
    inf = math.inf
    strictly = no_worse = 0
    amk_values = []
    for by_strategy in targets.values():
        if "amk" not in by_strategy:
            continue
        mine = _within_budget(by_strategy["amk"])
        amk_values.append(mine)
        baselines = [_within_budget(r) for s, r in by_strategy.items() if s != "amk"]
        strictly += all(mine < b for b in baselines)
        no_worse += all(mine <= b for b in baselines)
    median = statistics.median(amk_values) if amk_values else None
    per_baseline: dict[str, dict[str, int]] = {}
    for by_strategy in targets.values():
        if "amk" not in by_strategy:
            continue
        mine = _within_budget(by_strategy["amk"])
        for s, r in by_strategy.items():
            if s == "amk":
                continue
            theirs = _within_budget(r)
            counts = per_baseline.setdefault(s, {"fewer": 0, "equal": 0, "more": 0, "never": 0})
            if mine == inf and theirs == inf:
                counts["never"] += 1  # neither reached 5% within the budget: not "more", not "as many"
            else:
                counts["fewer" if mine < theirs else "equal" if mine == theirs else "more"] += 1
    return {"targets": len(targets), "amk_fewer_than_every_baseline": strictly,
            "amk_no_more_than_every_baseline": no_worse,
            "amk_median_evals_to_5pct": None if median is None or median == inf else median,
            "amk_against_each_baseline": per_baseline}


def write_curves_plot(rows: Sequence[SimulationRow], path: Path) -> str | None:
    """A PNG of each strategy's best-so-far curve (relative to the optimum) per target, one panel per
    held-out device; returns why not when matplotlib is missing (``pip install 'amk[plot]'``), else None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed, so no PNG was written; install it with: pip install 'amk[plot]'"
    targets: dict[tuple[str, str], list[SimulationRow]] = {}
    for r in rows:
        targets.setdefault((r.kernel, r.device), []).append(r)
    cols = min(3, max(1, len(targets)))
    nrows = math.ceil(len(targets) / cols) or 1
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.4 * nrows), dpi=100, squeeze=False)
    for ax, ((kernel, device), group) in zip(axes.flat, targets.items()):
        for r in group:
            points = [(i, v) for i, v in enumerate(r.curve or [], 1) if v is not None]
            if points:
                ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=r.strategy)
        ax.axhline(1.05, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_title(f"{kernel} held out: {device}", fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best so far / optimum (replayed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(targets):]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return None
