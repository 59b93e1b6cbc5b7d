"""Optuna and amk: a study warm-started from the corpus, and every finished trial recorded in it.

``warm_start(study, store, workload=..., device=..., distributions=...)``:

1. **Adds** one completed trial per config the corpus measured for the same workload (kind, name, shape)
   on the same device (PASS records of the ``kinds`` asked for; a config's value is the median of its
   samples, in the study's ``unit``), built with the study's ``distributions`` (``study.add_trials``), so
   the sampler starts from everything already known. Configs the study already holds are not added again.
2. **Enqueues** (``study.enqueue_trial``) the first ``enqueue`` configs of amk's own order, as ``amk tune``
   would measure them first: the warm-start seeds (the device's best configs, or those of similar devices)
   then the prior's top-ranked configs. They are measured by the study's next trials.

``RecordTrials(store, workload=..., device=...)`` is a callback (``study.optimize(..., callbacks=[...])``)
that appends every finished trial to the store: COMPLETE as PASS (its value as the latency), PRUNED as
REJECTED (stopped by the pruner; the reason names the step), FAIL as CRASH, or FAIL for a wrong answer
when the objective is wrapped in :func:`with_verdicts` and raised :class:`~amk.core.errors.WrongAnswerError`.
A failed trial only reaches callbacks when ``optimize`` catches its exception: pass ``catch=(Exception,)``.

**Categorical choices.** Optuna fixes a categorical parameter's choices within a study (it refuses
``suggest_categorical`` with other choices, "does not support dynamic value space"). Between studies they
may change; the corpus then holds values the new study's choices lack. ``warm_start`` adds only configs
whose every value fits the study's distributions, and says per knob which values it left out and how
many configs had them (a :class:`~amk.core.errors.LeftOutWarning`, and in the returned summary); the
records stay in the corpus for the studies whose choices hold them. A study that already has trials with
other choices for a knob than ``distributions`` is refused before anything is added (ValidationError
naming the knob, the values added and removed): create a new study for new choices.

Units: a study's values are in ``unit`` (``"ms"`` by default, as Kernel Tuner's time); records keep us.
"""

from __future__ import annotations

import functools
import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from amk.core.columns import CorpusColumns, config_key
from amk.core.config import AmkConfig, load_config, open_store
from amk.core.devices import Device
from amk.core.errors import LeftOutWarning, ValidationError, WrongAnswerError
from amk.core.records import (
    Measurement,
    MeasurementKind,
    Provenance,
    Record,
    Verdict,
    latency_to_us,
)
from amk.core.space import Knob, SearchSpace
from amk.core.store import CorpusQuery, Store
from amk.core.workload import Workload
from amk.tuning.objective import latency_problem

VERDICT_ATTR = "amk_verdict"  # user attrs with_verdicts sets on a failing trial
REASON_ATTR = "amk_reason"
SOURCE_ATTR = "amk_source"  # user attr of the trials warm_start adds or enqueues


def _optuna():
    try:
        import optuna
    except ImportError:
        from amk.core.errors import MissingDependencyError

        raise MissingDependencyError("amk.integrations.optuna needs optuna, which is not installed; install it "
                                     "with: pip install 'amk[optuna]'.") from None
    return optuna


def as_distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna distributions from ``space``: a distribution is kept, a list of choices becomes a
    CategoricalDistribution (so one ``{knob: [choices]}`` dict serves ``amk.tune`` and Optuna alike)."""
    optuna = _optuna()
    out = {}
    for name, value in space.items():
        if isinstance(value, optuna.distributions.BaseDistribution):
            out[name] = value
        elif isinstance(value, (list, tuple)) and value:
            out[name] = optuna.distributions.CategoricalDistribution(list(value))
        else:
            raise ValidationError(f"knob {name!r}: give an Optuna distribution or a non-empty list of choices, got "
                                  f"{value!r}.")
    return out


def suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """Every knob of ``space`` suggested by ``trial`` with exactly the distributions ``warm_start`` used,
    so the study's choices never drift from the warm start's."""
    optuna = _optuna()
    d = optuna.distributions
    params = {}
    for name, dist in as_distributions(space).items():
        if isinstance(dist, d.CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, list(dist.choices))
        elif isinstance(dist, d.IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        elif isinstance(dist, d.FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            raise ValidationError(f"knob {name!r}: {type(dist).__name__} is not supported; use a categorical, int "
                                  "or float distribution.")
    return params


def with_verdicts(objective: Callable[[Any], Any], *, unit: str = "ms") -> Callable[[Any], Any]:
    """``objective`` that, when it raises, leaves its verdict and reason on the trial for
    :class:`RecordTrials`: WrongAnswerError is FAIL (a wrong result), anything else CRASH naming the
    exception. Pruning (``optuna.TrialPruned``) passes through untouched. The exception is re-raised.
    A value that is not a latency in ``unit`` (None, NaN, inf, 0, a negative number) is a CRASH saying
    what came back, and the trial fails (ValueError) rather than complete: Optuna accepts 0 or a negative
    value, and the study's best would be a config that measured nothing. A list or tuple (a
    multi-objective study's values) is returned as it is."""
    optuna = _optuna()

    @functools.wraps(objective)
    def wrapped(trial: Any) -> Any:
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            raise
        except WrongAnswerError as exc:
            trial.set_user_attr(VERDICT_ATTR, Verdict.FAIL.value)
            trial.set_user_attr(REASON_ATTR, f"wrong answer: {exc}"[:500])
            raise
        except Exception as exc:
            trial.set_user_attr(VERDICT_ATTR, Verdict.CRASH.value)
            trial.set_user_attr(REASON_ATTR, f"{type(exc).__name__}: {exc}"[:500])
            raise
        problem = None if isinstance(value, (list, tuple)) else latency_problem(value, unit)
        if problem:
            trial.set_user_attr(VERDICT_ATTR, Verdict.CRASH.value)
            trial.set_user_attr(REASON_ATTR, problem[:500])
            raise ValueError(problem)
        return value

    return wrapped


def _target(workload: Workload | str, shape: Mapping[str, Any] | None, device: Device | str) -> tuple[Workload, Device]:
    from amk.api import device_of, workload_of

    if workload is None:
        raise ValidationError("name the workload: workload='kind:name' (with shape=) or a Workload.")
    return workload_of(workload, shape, None), device_of(device)


def _open(store: Store | str) -> tuple[Store, bool]:
    if isinstance(store, Store):
        return store, False
    if isinstance(store, str):
        return open_store(store), True
    raise ValidationError(f"store must be a Store or a store URL ('jsonl:corpus.jsonl'), got {store!r}.")


# -- fitting corpus configs to a study's distributions ------------------------------------------------
def _same(value: Any, choice: Any) -> bool:
    """Whether a recorded value is a categorical choice: numbers by value (16.0 is 16), bools, strings and
    None by type and value (True is not 1)."""
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(choice, numbers) and not isinstance(value, bool) \
            and not isinstance(choice, bool):
        return value == choice
    return type(value) is type(choice) and value == choice


def _fits(dist: Any, value: Any) -> bool:
    """Whether ``value`` (as recorded) is a value of the Optuna distribution ``dist``."""
    d = _optuna().distributions
    if isinstance(dist, d.CategoricalDistribution):
        return any(_same(value, c) for c in dist.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dist, d.IntDistribution):
        return float(value).is_integer() and dist.low <= value <= dist.high and (int(value) - dist.low) % dist.step == 0
    if isinstance(dist, d.FloatDistribution):
        if not dist.low <= value <= dist.high:
            return False
        return dist.step is None or math.isclose(round((value - dist.low) / dist.step) * dist.step + dist.low, value)
    return False


def _external(dist: Any, value: Any) -> Any:
    """The value as the distribution holds it (16.0 recorded for the int choice 16 is 16)."""
    d = _optuna().distributions
    if isinstance(dist, d.CategoricalDistribution):
        return next(c for c in dist.choices if _same(value, c))
    if isinstance(dist, d.IntDistribution):
        return int(value)
    return float(value)


def _check_study_choices(study: Any, distributions: Mapping[str, Any]) -> None:
    """Refuse distributions whose categorical choices differ from those the study's trials already use."""
    d = _optuna().distributions
    for trial in study.get_trials(deepcopy=False):
        for name, old in trial.distributions.items():
            new = distributions.get(name)
            if new is None:
                continue
            if isinstance(old, d.CategoricalDistribution) and isinstance(new, d.CategoricalDistribution) \
                    and list(old.choices) != list(new.choices):
                added = [c for c in new.choices if c not in old.choices]
                removed = [c for c in old.choices if c not in new.choices]
                detail = f"added {added}, removed {removed}" if added or removed else "the same values reordered"
                raise ValidationError(
                    f"the study {study.study_name!r} already has trials whose knob {name!r} has the choices "
                    f"{list(old.choices)}; the new choices {list(new.choices)} ({detail}) are refused by Optuna "
                    "within one study. Keep the old choices, or create a new study: its warm start adds the corpus "
                    "records whose values are among the new choices.")
            if type(old) is not type(new):
                raise ValidationError(f"the study {study.study_name!r} already has trials where {name!r} is a "
                                      f"{type(old).__name__}, not a {type(new).__name__}; Optuna refuses the change "
                                      "within one study; create a new study.")


@attrs.frozen
class WarmStart:
    """What ``warm_start`` did: trials added, configs enqueued, and what it left out and why."""

    added: int  # completed trials added from the corpus
    enqueued: list[dict[str, Any]]  # configs enqueued, in order
    enqueue_sources: list[str]  # why each was enqueued
    records: int  # corpus records of this workload and device read
    left_out: dict[str, int]  # reason -> configs not added for it
    outside_choices: dict[str, list[Any]]  # knob -> corpus values the study's choices lack


def _corpus_configs(store: Store, workload: Workload, device: Device, kinds: Sequence[MeasurementKind]):
    """config key -> (config, PASS latencies in us, verdicts) of the records of ``workload`` on ``device``."""
    query = CorpusQuery(device=device.name, workload_kind=workload.kind, workload_name=workload.name,
                        workload_shape=workload.shape)
    configs: dict[str, tuple[dict[str, Any], list[float], list[str]]] = {}
    n = 0
    for record in store.query(query):
        if record.measurement.kind not in kinds:
            continue
        n += 1
        entry = configs.setdefault(config_key(record.config), (dict(record.config), [], []))
        m = record.measurement
        entry[2].append(m.verdict.value)
        if m.verdict is Verdict.PASS and m.latency_us is not None:
            entry[1].append(m.latency_us)
    return configs, n


def warm_start(study: Any, store: Store | str, *, workload: Workload | str, device: Device | str,
               distributions: Mapping[str, Any], shape: Mapping[str, Any] | None = None, unit: str = "ms",
               enqueue: int | None = None, kinds: Sequence[MeasurementKind | str] = (MeasurementKind.MEASURED,),
               config: str | AmkConfig | None = None) -> WarmStart:
    """Warm-start ``study`` from the corpus in ``store`` (see the module docstring).

    :param distributions: knob -> Optuna distribution or list of choices: what the objective suggests
        (use :func:`suggest` with the same dict).
    :param enqueue: configs to enqueue (default: ``[tune] warm_start``, 3); 0: none.
    :param kinds: the measurement kinds to learn from (measured by default).
    :param config: the amk config file whose featurizer, ranker and ``[tune]`` settings order the enqueued
        configs (None: the usual search).
    :raises ValidationError: a study that does not minimize one objective, or whose trials use other
        categorical choices; MissingDependencyError without optuna.
    """
    optuna = _optuna()
    if len(study.directions) != 1 or study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ValidationError(f"the study {study.study_name!r} must minimize one objective (a latency) to be "
                              "warm-started from the corpus; create it with direction='minimize'.")
    dists = as_distributions(distributions)
    _check_study_choices(study, dists)
    target_workload, target_device = _target(workload, shape, device)
    factor = latency_to_us(1.0, unit)  # us per unit; ValidationError for an unknown unit
    kinds = tuple(MeasurementKind(k) for k in kinds)
    opened, owned = _open(store)
    try:
        configs, n_records = _corpus_configs(opened, target_workload, target_device, kinds)
        corpus = opened.columns()
    finally:
        if owned:
            opened.close()

    held = {config_key(t.params) for t in study.get_trials(deepcopy=False,
                                                              states=(optuna.trial.TrialState.COMPLETE,))}
    left_out: dict[str, int] = {}
    outside: dict[str, set] = {}
    trials = []
    for cfg, latencies, verdicts in configs.values():
        missing = sorted(set(dists) - set(cfg))
        extra = sorted(set(cfg) - set(dists))
        if missing or extra:
            reason = f"knobs differ from the study's (missing {missing}, not in the study {extra})"
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        bad = {k: cfg[k] for k in dists if not _fits(dists[k], cfg[k])}
        if bad:
            for k, v in bad.items():
                outside.setdefault(k, set()).add(repr(v) if isinstance(v, str) else v)
            reason = "a value outside the study's distributions"
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        if not latencies:
            reason = "no passing measurement (Optuna's samplers learn nothing from failed trials)"
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        params = {k: _external(dists[k], cfg[k]) for k in dists}
        if config_key(params) in held:
            continue
        held.add(config_key(params))
        trials.append(optuna.trial.create_trial(
            params=params, distributions=dict(dists), value=statistics.median(latencies) / factor,
            user_attrs={SOURCE_ATTR: f"amk corpus: {len(latencies)} passing record(s) of {target_workload.name} on "
                                     f"{target_device.name}"}))
    if trials:
        study.add_trials(trials)
    outside_choices = {k: sorted(v, key=repr) for k, v in sorted(outside.items())}
    for reason, count in left_out.items():
        detail = ""
        if reason.startswith("a value outside") and outside_choices:
            detail = ": " + "; ".join(f"knob {k!r} has {vals} in the corpus, not among {_describe(dists[k])}"
                                      for k, vals in outside_choices.items())
        warnings.warn(f"warm start of the study {study.study_name!r}: {count} config(s) of the corpus not added, "
                      f"{reason}{detail}", LeftOutWarning, stacklevel=2)

    enqueued, sources = _enqueue(study, dists, corpus, target_workload, target_device, kinds, enqueue, config)
    return WarmStart(len(trials), enqueued, sources, n_records, left_out, outside_choices)


def _describe(dist: Any) -> str:
    d = _optuna().distributions
    if isinstance(dist, d.CategoricalDistribution):
        return f"the choices {list(dist.choices)}"
    return f"[{dist.low}, {dist.high}]"


def _candidate_space(dists: Mapping[str, Any], corpus: CorpusColumns, workload: Workload,
                     limit: int) -> SearchSpace | None:
    """The configs amk may enqueue: every combination of the choices when finite, else of the values the
    corpus recorded for this workload (any device) that fit the distributions."""
    d = _optuna().distributions
    seen: dict[str, list[Any]] = {k: [] for k in dists}
    mine = [i for i, w in enumerate(corpus.workloads) if w.key == workload.key]
    rows = np.unique(corpus.config_index[np.isin(corpus.workload_index, mine)]) if mine else []
    for row in rows:
        cfg = corpus.configs[int(row)]
        for k, dist in dists.items():
            if k in cfg and _fits(dist, cfg[k]) and _external(dist, cfg[k]) not in seen[k]:
                seen[k].append(_external(dist, cfg[k]))
    knobs, size = [], 1
    for name, dist in dists.items():
        if isinstance(dist, d.CategoricalDistribution):
            choices = list(dist.choices)
        elif isinstance(dist, d.IntDistribution) and not dist.log and (dist.high - dist.low) // dist.step < limit:
            choices = list(range(dist.low, dist.high + 1, dist.step))
        else:
            choices = sorted(seen[name])
        if not choices:
            return None
        size *= len(choices)
        knobs.append(Knob(name, tuple(choices)))
    return SearchSpace(knobs, default_known=False) if size <= limit else None  # no default anyone chose


def _enqueue(study: Any, dists: Mapping[str, Any], corpus: CorpusColumns, workload: Workload, device: Device,
             kinds: tuple[MeasurementKind, ...], count: int | None, config: str | AmkConfig | None):
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.tuning.objective import ObjectiveBackend
    from amk.tuning.settings import tune_settings
    from amk.tuning.target import TuneTarget

    optuna = _optuna()
    app_config = config if isinstance(config, AmkConfig) else load_config(config)
    settings = tune_settings(app_config)
    count = settings.warm_start if count is None else count
    if count <= 0:
        return [], []
    space = _candidate_space(dists, corpus, workload, settings.max_candidates)
    if space is None:
        warnings.warn("nothing enqueued: the study's distributions have no finite set of candidates and the corpus "
                      f"records no fitting config of {workload.name}", LeftOutWarning, stacklevel=3)
        return [], []

    def never_called(config: dict[str, Any]) -> float:
        raise AssertionError("the warm start only orders candidates; it measures nothing")

    backend = ObjectiveBackend(never_called, space)
    target = TuneTarget.prepare(workload, device, backend, corpus, settings,
                                featurizer=app_config.create(Featurizer), ranker=app_config.create(Ranker),
                                kinds=kinds)
    waiting = {config_key(t.system_attrs.get("fixed_params", t.params))
               for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))}
    order: list[tuple[str, str]] = [(key, f"amk warm start: {source}")
                                    for key, source in zip(target.seeds, target.seed_sources)]
    if np.isfinite(target.prior_scores).any():  # a trained prior (an untrained one scores +inf)
        ranked = sorted(range(len(target.keys)), key=lambda i: (not math.isfinite(target.prior_scores[i]),
                                                                target.prior_scores[i]))
        order += [(target.keys[i], f"amk prior: rank {r + 1} of {len(ranked)}") for r, i in enumerate(ranked)]
    enqueued, sources, done = [], [], set(waiting)
    for key, source in order:
        if len(enqueued) >= count:
            break
        if key in done:
            continue
        done.add(key)
        params = dict(target.candidates[target.index[key]])
        study.enqueue_trial(params, user_attrs={SOURCE_ATTR: source})
        enqueued.append(params)
        sources.append(source)
    return enqueued, sources


# -- recording trials -------------------------------------------------------------------------------
class RecordTrials:
    """An Optuna callback that appends every finished trial of a study to an amk store (see the module
    docstring for the verdicts). ``store``: a Store (left open) or a store URL (opened now; ``close()``)."""

    def __init__(self, store: Store | str, *, workload: Workload | str, device: Device | str,
                 shape: Mapping[str, Any] | None = None, unit: str = "ms",
                 kind: MeasurementKind | str = MeasurementKind.MEASURED) -> None:
        self.workload, self.device = _target(workload, shape, device)
        self.unit = unit
        self.factor = latency_to_us(1.0, unit)  # us per unit; ValidationError for an unknown unit
        self.kind = MeasurementKind(kind)
        self.store, self._owned = _open(store)
        self.records: list[Record] = []  # what this callback appended

    def __call__(self, study: Any, trial: Any) -> None:
        record = self.record_of(study, trial)
        if record is None:
            return
        self.store.append([record])
        self.records.append(record)

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def measurement_of(self, trial: Any) -> Measurement | None:
        """The verdict and latency of a finished trial (None for one not finished)."""
        optuna = _optuna()
        state = trial.state
        states = optuna.trial.TrialState
        if state == states.COMPLETE:
            value = trial.value
            problem = latency_problem(value, self.unit)
            if problem is None:
                return Measurement(verdict=Verdict.PASS, kind=self.kind, latency_us=value * self.factor, samples=1)
            return Measurement(verdict=Verdict.CRASH, kind=self.kind, reason=problem)
        if state == states.PRUNED:
            step = trial.last_step
            at = f" at step {step} (intermediate value {trial.intermediate_values.get(step)!r})" if step is not None \
                else ""
            return Measurement(verdict=Verdict.REJECTED, kind=self.kind, reason=f"pruned by Optuna's pruner{at}")
        if state == states.FAIL:
            verdict = trial.user_attrs.get(VERDICT_ATTR)
            reason = trial.user_attrs.get(REASON_ATTR)
            if verdict in (Verdict.FAIL.value, Verdict.CRASH.value) and reason:
                return Measurement(verdict=Verdict(verdict), kind=self.kind, reason=str(reason)[:500])
            return Measurement(verdict=Verdict.CRASH, kind=self.kind,
                               reason="the trial failed: the objective raised, or returned a value Optuna refuses "
                                      "(None, NaN); wrap the objective in amk.integrations.optuna.with_verdicts to "
                                      "record why")
        return None

    def record_of(self, study: Any, trial: Any) -> Record | None:
        """The record of a finished trial (None for a trial not finished: nothing to record yet)."""
        measurement = self.measurement_of(trial)
        if measurement is None:
            return None
        optuna = _optuna()
        finished = trial.datetime_complete or trial.datetime_start
        extra = {"study": study.study_name, "trial": trial.number, "state": trial.state.name,
                 "sampler": type(study.sampler).__name__}
        if SOURCE_ATTR in trial.user_attrs:
            extra["enqueued_by"] = trial.user_attrs[SOURCE_ATTR]
        return Record(
            workload=self.workload, device=self.device, config=dict(trial.params), measurement=measurement,
            provenance=Provenance(backend="optuna", backend_version=optuna.__version__,
                                  timestamp=finished.timestamp() if finished else None, notes="optuna trial",
                                  source=f"optuna study {study.study_name} trial {trial.number}", extra=extra))
