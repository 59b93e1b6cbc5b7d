"""``AmkStrategy``: amk's tune loop as a Kernel Tuner search strategy.

Kernel Tuner (>= 1.3) accepts any object with ``tune(searchspace, runner, tuning_options)`` as its
``strategy``. ``AmkStrategy.tune`` names the workload and device as amk's importer would
(:mod:`.naming`), prepares amk's tune target over Kernel Tuner's search space (warm-start seeds from the
corpus, the prior's scores, the transfer features: :meth:`amk.tuning.target.TuneTarget.prepare`) and runs
amk's loop (:func:`amk.tuning.loop.tune`) with a backend whose ``measure`` is Kernel Tuner's cost
function. So Kernel Tuner keeps what it owns: its budget (``max_fevals``, ``time_limit``, the budget
object of 1.4+; the loop stops when Kernel Tuner says so), its restrictions (the search space is its
own), its cache file, its runner and device. Every evaluated point, failures included, is appended to
the store as it is measured (:mod:`.recording`); kind ``measured`` live, ``replayed`` under
``tune_cache`` / ``simulation_mode``.

amk orders by time (the records' latency: the median of Kernel Tuner's ``times``); with another
objective Kernel Tuner still reports its own best, and amk warns that its order follows time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import attrs

from amk.core.backend import Backend
from amk.core.columns import config_key
from amk.core.config import opened_store
from amk.core.devices import Device
from amk.core.errors import ConfigError
from amk.core.records import Measurement, MeasurementKind, Record, Verdict
from amk.core.space import Knob, SearchSpace
from amk.core.store import Store
from amk.core.workload import Workload
from amk.tuning.settings import TuneSettings

from . import compat
from ._values import json_safe
from .naming import device_of, workload_of
from .recording import RunLabel, RunRecorder, result_measurement

# [tune] settings Kernel Tuner owns (or that mean nothing inside it), and what to use instead.
NOT_SETTABLE = {
    "budget": "Kernel Tuner's strategy_options max_fevals",
    "minutes": "Kernel Tuner's strategy_options time_limit (seconds)",
    "isolation": "nothing: Kernel Tuner's runner measures, in Kernel Tuner's process",
    "timeout_s": "nothing: Kernel Tuner's runner measures",
    "ab_rounds": "nothing: re-measuring a config would cost Kernel Tuner evaluations and hit its cache",
    "state_dir": "Kernel Tuner's cache file (cache=...), which continues an interrupted run",
}


@attrs.frozen
class KernelTunerSpace(SearchSpace):
    """Kernel Tuner's search space as amk's: its parameters as knobs, its valid configs (restrictions
    applied by Kernel Tuner) as the only legal ones, in Kernel Tuner's order."""

    valid: Mapping[str, tuple] = attrs.field(factory=dict, eq=False, hash=False)  # config key -> KT's tuple

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = self.knob_names
        for values in self.valid.values():
            yield dict(zip(names, json_safe(list(values))))

    @classmethod
    def of(cls, searchspace: Any) -> KernelTunerSpace:
        names = list(searchspace.param_names)
        valid = {config_key(dict(zip(names, json_safe(list(values))))): tuple(values) for values in searchspace.list}
        knobs = [Knob(name, tuple(json_safe(list(searchspace.tune_params[name])))) for name in names]
        return cls(knobs, constraints=(lambda config: config_key(config) in valid,),
                   constraint_texts=("'in Kernel Tuner's search space' (its restrictions)",), valid=valid,
                   default_known=False)  # Kernel Tuner names no default config


class KernelTunerBackend(Backend):
    """A backend over one Kernel Tuner run: the search space is Kernel Tuner's, ``measure`` is its cost
    function (which counts the evaluation against its budget and consults its cache)."""

    name: ClassVar[str] = "kernel_tuner"

    def __init__(self, space: KernelTunerSpace, cost: Any, objective_name: str, kind: MeasurementKind) -> None:
        super().__init__()
        self.space = space
        self.cost = cost
        self.objective_name = objective_name
        self.measurement_kind = kind
        self.version = compat.version()
        self.stopped: str | None = None  # why Kernel Tuner refused or ended the last evaluation

    def search_space(self, workload: Workload, device: Device) -> SearchSpace:
        return self.space

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any]) -> Measurement:
        from kernel_tuner.util import StopCriterionReached

        values = self.space.valid[config_key(dict(config))]
        before = len(self.cost.results)
        try:
            self.cost(values, check_restrictions=False)  # from Kernel Tuner's own list: valid
        except StopCriterionReached as exc:  # >= 1.4: also after evaluating the config that spent the budget
            self.stopped = f"Kernel Tuner's budget is spent: {exc}"
        evaluated = self.cost.results[before:]
        if not evaluated:
            return Measurement(verdict=Verdict.TIMEOUT, kind=self.measurement_kind,
                               reason=f"not evaluated: {self.stopped or 'Kernel Tuner returned no result'}")
        return result_measurement(evaluated[-1], self.objective_name, self.measurement_kind)

    def stop_reason(self, tuning_options: Any) -> str | None:
        return self.stopped or compat.stop_reason(tuning_options)


class CallerThreadMeasurer:
    """Measures in the calling thread: Kernel Tuner's runner holds a device context (CUDA's is bound to
    the thread that made it) and its errors must reach Kernel Tuner as they would from its own strategies."""

    mode = "thread"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def measure(self, workload: Workload, device: Device, config: Mapping[str, Any],
                timeout_s: float | None) -> Measurement:
        return self.backend.measure(workload, device, config)

    def close(self) -> None:
        pass


@attrs.frozen
class AmkRun:
    """What ``AmkStrategy`` did in its last run."""

    workload: Workload
    device: Device
    warm_start: list[str]  # where each seed came from, best first
    prior: str  # the prior's description
    stop_reason: str | None
    evaluations: int
    records: list[Record]  # appended to the store (or, without one, only kept here)
    left_out_known: int  # Kernel Tuner cache hits the store already held


class AmkStrategy:
    """amk's search (warm start from the corpus, prior, surrogate) as a Kernel Tuner strategy.

    ``kernel_tuner.tune_kernel(..., strategy=AmkStrategy(store="sqlite:corpus.db"),
    strategy_options={"max_fevals": 50})``, or ``kernel_tuner.tune_cache(path, strategy=...)`` to replay.

    - ``store``: a store URL (``jsonl:PATH``, ``sqlite:PATH``, ``postgresql://...``), a Store, or None
      for the store amk's config selects (``amk.toml``; else ``.amk/corpus.jsonl``). Its records are the
      corpus the run learns from; every point the run evaluates is appended to it.
    - ``ranker``, ``featurizer``: names or instances (default: the config's ``[ranker]``/``[featurizer]``).
    - ``seed``: the loop's seed (default: Kernel Tuner's ``seed`` option, else 0).
    - ``device``: the device name to record and learn for (default: what Kernel Tuner reports; for its C
      backend, which reports none, this machine's CPU, with a warning).
    - ``**settings``: ``[tune]`` settings (``policy``, ``warm_start``, ``exploration``, ``kappa``, ...) on top
      of the config's; the budget is Kernel Tuner's (``max_fevals``, ``time_limit``): ConfigError for
      ``budget``, ``minutes`` and the others Kernel Tuner owns.

    ``tune`` returns Kernel Tuner's result list; ``last_run`` says what the run did. The object is
    hashable (Kernel Tuner looks strategies up in a dict) and may be reused for several runs.
    """

    def __init__(self, store: str | Store | None = None, *, ranker: Any = None, featurizer: Any = None,
                 seed: int | None = None, device: str | Device | None = None, **settings: Any) -> None:
        refused = sorted(set(settings) & set(NOT_SETTABLE))
        if refused:
            raise ConfigError("AmkStrategy does not take " + "; ".join(
                f"{k!r} (use {NOT_SETTABLE[k]})" for k in refused) + ".")
        try:
            TuneSettings(**settings)
        except TypeError:
            known = sorted(f.name for f in attrs.fields(TuneSettings) if f.name not in NOT_SETTABLE)
            unknown = sorted(set(settings) - set(known))
            raise ConfigError(f"AmkStrategy: unknown [tune] setting(s) {unknown}; known: {known}.") from None
        except ValueError as exc:
            raise ConfigError(f"AmkStrategy: {exc}.") from None
        self.store = store
        self.ranker = ranker
        self.featurizer = featurizer
        self.seed = seed
        self.device = device
        self.settings = dict(settings)
        self.last_run: AmkRun | None = None

    def __repr__(self) -> str:
        return f"AmkStrategy(store={self.store!r}, ranker={self.ranker!r}, settings={self.settings!r})"

    def _settings(self, config: Any) -> TuneSettings:
        from amk.tuning.settings import tune_settings

        return attrs.evolve(tune_settings(config), **self.settings, ab_rounds=0, minutes=0.0, isolation="thread")

    def tune(self, searchspace: Any, runner: Any, tuning_options: Any) -> list[dict[str, Any]]:
        """Kernel Tuner's strategy interface: evaluate configs until Kernel Tuner's budget is spent (or
        every config was evaluated); returns the results in evaluation order."""
        compat.require_kernel_tuner()
        from kernel_tuner.strategies.common import CostFunc

        from amk.core.config import load_config
        from amk.core.featurizer import Featurizer
        from amk.core.ranker import Ranker
        from amk.tuning.loop import tune
        from amk.tuning.settings import default_learning_kinds
        from amk.tuning.target import TuneTarget

        config = load_config()
        settings = self._settings(config)
        workload, device = workload_of(runner, tuning_options), device_of(runner, self.device)
        objective_name, _ = compat.objective(tuning_options)
        if objective_name != "time":
            warnings.warn(f"AmkStrategy orders configs by their time; Kernel Tuner's objective here is "
                          f"{objective_name!r}, which it still uses to report the best.", UserWarning, stacklevel=2)
        simulation = bool(runner.simulation_mode)
        kind = MeasurementKind.REPLAYED if simulation else MeasurementKind.MEASURED
        seed = self.seed if self.seed is not None else int(tuning_options.get("seed") or 0)
        cost = CostFunc(searchspace, tuning_options, runner, snap=False)
        backend = KernelTunerBackend(KernelTunerSpace.of(searchspace), cost, objective_name, kind)
        with opened_store(self.store, config) as store:
            recorder = RunRecorder(store, workload, device, tuning_options, searchspace.param_names,
                                   RunLabel("amk"), simulation=simulation)
            target = TuneTarget.prepare(
                workload, device, backend, store.columns(), settings,
                featurizer=self.featurizer or config.create(Featurizer), ranker=self.ranker or config.create(Ranker),
                kinds=default_learning_kinds(backend))
            left = compat.evaluations_left(tuning_options, searchspace.size)
            result = None
            try:
                if left > 0:
                    with recorder.attached(runner):
                        result = tune(target, settings, seed=seed, budget=left, minutes=0, store=None,
                                      measurer=CallerThreadMeasurer(backend),
                                      should_stop=lambda: backend.stop_reason(tuning_options))
            finally:
                self.last_run = AmkRun(
                    workload, device, list(target.seed_sources), target.prior_description,
                    result.state.stop_reason if result else (None if left > 0 else "Kernel Tuner's budget is spent"),
                    recorder.evaluated, recorder.records, recorder.left_out_known)
        return cost.results

