"""The tune loop: warm start, ranked candidates, gated measurements, every point into the corpus.

``TuneTarget.prepare`` does the once-per-target work: the backend's search space (one canonical config
per distinct kernel), the warm-start seeds from the corpus, the prior's scores and the transfer
features (what the corpus measured for the same config on other devices). ``tune`` then measures,
seeds first, then the ordering policy's picks (:mod:`amk.core.tune_policy`, retrained as results
arrive), never a config twice; each result passes the gates (correctness verdict, physical floor,
interleaved A/B keep/revert for measured backends) and is appended to the store with its kind and
verdict, failures included. The state file makes a killed run resumable (:mod:`amk.core.tune_state`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.columns import VERDICT_CODES, CorpusColumns, config_key
from amk.core.devices import Device
from amk.core.errors import AmkError, ConfigError, InvalidConfigError
from amk.core.guarded import ab_decision, floor_guard
from amk.core.interfaces import Backend, SearchSpace
from amk.core.isolation import Measurer, make_measurer
from amk.core.plugins import Registry
from amk.core.progress import ProgressBar
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import Store
from amk.core.tune_policy import OrderingPolicy, make_policy
from amk.core.tune_state import Trial, TuneState
from amk.core.workload import Workload

log = logging.getLogger("amk.tune")

MAX_TRANSFER_DEVICES = 8


def default_learning_kinds(backend: Backend) -> tuple[MeasurementKind, ...]:
    """What a run learns from unless told otherwise: a predicting backend (roofline) learns from predictions,
    its own kind, so its runs warm-start each other without mixing in measurements; measuring and replaying
    backends learn from measurements."""
    if backend.measurement_kind is MeasurementKind.PREDICTED:
        return (MeasurementKind.PREDICTED,)
    return (MeasurementKind.MEASURED,)


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}={value!r} must be >= 0")


def _one_of(*choices: str):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name}={value!r} must be one of {list(choices)}")

    return check


@attrs.frozen
class TuneSettings:
    """The ``[tune]`` section of the config: how the loop searches, gates and stops."""

    budget: int = attrs.field(default=100, validator=_non_negative)  # configs to evaluate
    minutes: float = attrs.field(default=0.0, validator=_non_negative)  # wall-clock limit; 0: none
    policy: str = attrs.field(default="surrogate", validator=_one_of("surrogate", "prior"))
    exploration: str = attrs.field(default="uncertainty", validator=_one_of("uncertainty", "epsilon"))
    epsilon: float = attrs.field(default=0.1, validator=_non_negative)  # for exploration = "epsilon"
    kappa: float = attrs.field(default=1.0, validator=_non_negative)  # for exploration = "uncertainty"
    trees: int = attrs.field(default=30, validator=_non_negative)  # surrogate ensemble size
    warm_start: int = attrs.field(default=3, validator=_non_negative)  # seeds taken from the corpus
    shape_radius: float = attrs.field(default=1.0, validator=_non_negative)
    transfer: bool = True  # feed the corpus's latency of each config on other devices to the policy
    timeout_s: float = attrs.field(default=600.0, validator=_non_negative)  # per measurement; 0: none
    floor_tolerance: float = attrs.field(default=0.02, validator=_non_negative)  # below floor*(1-tol): REJECTED
    ab_rounds: int = attrs.field(default=5, validator=_non_negative)  # interleaved A/B pairs (measured backends)
    ab_noise: float = attrs.field(default=2.0, validator=_non_negative)  # margin in standard errors
    min_gain: float = attrs.field(default=0.005, validator=_non_negative)  # smallest relative gain kept
    max_candidates: int = attrs.field(default=200_000, validator=_non_negative)
    state_dir: str = ".amk/tune"  # state files and reports, relative to the working directory
    # Where backend.measure runs: "process" (a worker process, killed on a timeout, whose death is a CRASH),
    # "thread" (in this process) or "auto" (the backend's own choice: process for compiled kernels).
    isolation: str = attrs.field(default="auto", validator=_one_of("auto", "process", "thread"))


def _knob_features(space: SearchSpace, candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Numeric knobs as their value, other knobs as the index of their value among the choices."""
    columns = []
    for knob in space.knobs:
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in knob.choices)
        if numeric:
            columns.append([float(c[knob.name]) for c in candidates])
        else:
            order = {config_key({"v": v}): i for i, v in enumerate(knob.choices)}
            columns.append([float(order.get(config_key({"v": c[knob.name]}), -1)) for c in candidates])
    return np.asarray(columns, dtype=np.float64).T.reshape(len(candidates), len(space.knobs))


def transfer_features(columns: CorpusColumns, workload: Workload, device: Device, record_keys: Sequence[str],
                      kinds: Sequence[MeasurementKind] = (MeasurementKind.MEASURED,)) -> tuple[np.ndarray, list[str]]:
    """Per candidate, the log of its latency relative to the best on each other device that measured this
    exact workload (a failure: the worst there plus a penalty; unmeasured: that device's mean)."""
    if len(columns) == 0:
        return np.zeros((len(record_keys), 0)), []
    widx = [i for i, w in enumerate(columns.workloads) if w.key == workload.key]
    rows = np.flatnonzero(np.isin(columns.workload_index, widx)) if widx else np.zeros(0, dtype=np.int64)
    rows = rows[columns.mask(kinds=tuple(kinds))[rows]]
    pass_code = VERDICT_CODES.index(Verdict.PASS)
    per_device: dict[int, list[int]] = {}
    for r in rows:
        d = int(columns.device_index[r])
        if columns.devices[d].name != device.name:
            per_device.setdefault(d, []).append(int(r))
    chosen = sorted(per_device, key=lambda d: -len(per_device[d]))[:MAX_TRANSFER_DEVICES]
    config_keys = [config_key(c) for c in columns.configs]
    position = {k: i for i, k in enumerate(record_keys)}
    out, names = [], []
    for d in chosen:
        col = np.full(len(record_keys), np.nan)
        failed = np.zeros(len(record_keys), dtype=bool)
        for r in per_device[d]:
            i = position.get(config_keys[columns.config_index[r]])
            if i is None:
                continue
            latency = columns.latency_us[r]
            if columns.verdict[r] == pass_code and np.isfinite(latency) and latency > 0:
                col[i] = math.log(latency)
            else:
                failed[i] = True
        if np.isnan(col).all():
            continue
        col = col - np.nanmin(col)
        worst = np.nanmax(col)
        col[failed & np.isnan(col)] = worst + 0.5
        col[np.isnan(col)] = np.nanmean(col)
        out.append(col)
        names.append(columns.devices[d].name)
    if not out:
        return np.zeros((len(record_keys), 0)), []
    return np.column_stack(out), names


def portfolio_warm_start(workload: Workload, device: Device, corpus: CorpusColumns, settings: TuneSettings,
                         kinds: Sequence[MeasurementKind]) -> list:
    """The corpus's warm-start seeds, best first, with room for ones the search space refuses.

    With rows for the target device, its own best configs. Without, seeds are taken in turn from each
    device that has rows (one config good on each of them is worth more than three from a single device
    that may not transfer), devices of the target's architecture first, then the most similar by specs:
    similar specs on another architecture transfer worse than the same architecture.
    """
    from amk.core.prior import device_distance, warm_start

    k = max(settings.warm_start * 4, settings.warm_start)
    # The caller checks each seed against the target's search space (warm_start would check it against
    # each seed's own device).
    seeds = warm_start(workload, device, corpus, k=k, shape_radius=settings.shape_radius, kinds=kinds)
    if not seeds or seeds[0].device == device.name:
        return seeds
    others = [d for d in corpus.devices if d.name != device.name]
    distance = device_distance(device, others) if others else np.zeros(0)
    order = sorted(range(len(others)),
                   key=lambda i: (device.arch is None or others[i].arch != device.arch, distance[i], others[i].name))
    per_device = [warm_start(workload, others[i].name, corpus, k=k, shape_radius=settings.shape_radius,
                             kinds=kinds) for i in order]
    merged = []
    for rank in range(k):
        merged += [seeds_of[rank] for seeds_of in per_device if rank < len(seeds_of)]
    return merged


def pooled_best(transfer: np.ndarray | None, names: Sequence[str], corpus: CorpusColumns,
                device: Device) -> int | None:
    """The candidate with the best mean relative latency over the other devices, as a first seed when
    none of them shares the target's architecture (no single device then speaks for the target; their
    consensus is the safer first guess). None when fewer than two devices measured this workload."""
    if transfer is None or transfer.shape[1] < 2:
        return None
    arches = {d.name: d.arch for d in corpus.devices}
    if device.arch is not None and any(arches.get(n) == device.arch for n in names):
        return None
    return int(np.argmin(transfer.mean(axis=1)))


@attrs.define
class TuneTarget:
    """Everything about one (workload, device, backend) the loop computes once."""

    workload: Workload
    device: Device
    backend: Backend
    space: SearchSpace
    candidates: list[dict[str, Any]]
    keys: list[str]
    index: dict[str, int]
    features: np.ndarray
    prior_scores: np.ndarray
    prior_uncertainty: np.ndarray | None
    prior_description: str
    seeds: list[str]  # candidate keys, best first
    seed_sources: list[str]
    transfer_devices: list[str]
    floor_us: float | None
    skipped_seeds: int = 0

    @property
    def target_id(self) -> str:
        return target_id(self.workload, self.device, self.backend.name)

    @classmethod
    def prepare(cls, workload: Workload, device: Device, backend: Backend, corpus: CorpusColumns,
                settings: TuneSettings, *, featurizer: Any = "amk", ranker: Any = "knn",
                prior: Any = None, kinds: Sequence[MeasurementKind] | None = None) -> TuneTarget:
        """Search space, seeds, prior scores and features of a target; the prior and the warm start learn
        from the corpus rows of ``kinds`` (measured only by default)."""
        from amk.core.prior import DEFAULT_KINDS, cold_start_reason, make_ranker

        kinds = tuple(kinds) if kinds else DEFAULT_KINDS

        space = backend.search_space(workload, device)
        candidates = []
        for config in space:
            candidates.append(config)
            if settings.max_candidates and len(candidates) >= settings.max_candidates:
                log.warning("the search space has more than %d configs; tuning over the first %d",
                            settings.max_candidates, settings.max_candidates)
                break
        if not candidates:
            raise AmkError(f"the {backend.name} backend's search space for {workload.name!r} on {device.name!r} "
                           "is empty; check its constraints.")
        keys = [config_key(c) for c in candidates]
        index = {k: i for i, k in enumerate(keys)}
        record_configs = [backend.record_config(workload, c) for c in candidates]

        if prior is None:
            prior = make_ranker(corpus, featurizer=featurizer, ranker=ranker, workload_kind=workload.kind,
                                kinds=kinds)
        scores = prior.score(workload, device, record_configs)
        # Only the prior-order policy explores by the prior's uncertainty (the surrogate has its own).
        uncertainty = (prior.uncertainty(workload, device, record_configs)
                       if settings.policy == "prior" and settings.exploration == "uncertainty" else None)
        prior_column = np.where(np.isfinite(scores), scores, 0.0)

        feats = [_knob_features(space, candidates)]
        transfer_names: list[str] = []
        transfer = None
        if settings.transfer:
            transfer, transfer_names = transfer_features(corpus, workload, device,
                                                         [config_key(c) for c in record_configs], kinds)
            feats.append(transfer)
        if prior.trained:
            feats.append(prior_column[:, None])

        seeds, sources, skipped = [], [], 0
        pooled = pooled_best(transfer if settings.transfer else None, transfer_names, corpus, device)
        if pooled is not None and settings.warm_start:
            seeds.append(keys[pooled])
            sources.append(f"the best mean relative latency on {', '.join(transfer_names)}")
        for seed in portfolio_warm_start(workload, device, corpus, settings, kinds):
            try:
                key = config_key(space.canonical(backend.knob_config(workload, seed.config)))
            except InvalidConfigError:
                skipped += 1
                continue
            if key not in index:
                skipped += 1
                continue
            if key not in seeds:
                seeds.append(key)
                sources.append(f"{seed.source} ({seed.device}, {seed.latency_us:.3f} us)")
            if len(seeds) >= settings.warm_start:
                break
        if not seeds:
            default = config_key(space.canonical(space.default_config))
            if default in index:
                reason = cold_start_reason(workload, device, corpus, kinds)
                seeds, sources = [default], [f"the search space's default config (cold start: {reason})"]
        floor = backend.floor_us(workload, device)
        return cls(workload, device, backend, space, candidates, keys, index, np.column_stack(feats), scores,
                   uncertainty, repr(prior), seeds, sources, transfer_names, floor, skipped)


@attrs.frozen
class TuneResult:
    target: TuneTarget
    state: TuneState
    records: list[Record]  # what this session appended (or would have, without a store)
    isolation: str = "thread"  # where the backend measured: "process" (a worker process) or "thread"

    @property
    def best(self) -> Trial | None:
        kept = [t for t in self.state.trials if t.key == self.state.incumbent_key]
        return kept[-1] if kept else None

    def best_config(self) -> dict[str, Any] | None:
        if self.state.incumbent_key is None:
            return None
        return self.target.candidates[self.target.index[self.state.incumbent_key]]

    def best_so_far(self) -> list[tuple[int, float | None]]:
        """(evaluation, incumbent latency after it) for every evaluation."""
        out, best = [], None
        for t in self.state.trials:
            if t.kept:
                best = t.latency_us
            out.append((t.evaluation, best))
        return out

    def evaluations_to(self, threshold_us: float) -> int | None:
        """The first evaluation whose measured latency was within ``threshold_us`` (None: never)."""
        for t in self.state.trials:
            if t.verdict == Verdict.PASS.value and t.latency_us is not None and t.latency_us <= threshold_us:
                return t.evaluation
        return None


def target_id(workload: Workload, device: Device, backend_name: str) -> str:
    """What identifies a tune target: a state file is only resumed for the same one."""
    return json.dumps([workload.key, device.name, backend_name], separators=(",", ":"))


def run_stem(workload: Workload, device: Device, backend_name: str) -> str:
    """A file-name stem for a target's state and report files."""
    digest = hashlib.sha256(target_id(workload, device, backend_name).encode()).hexdigest()[:10]
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in workload.name)[:40]
    return f"{slug}-{device.name}-{backend_name}-{digest}"


def default_state_path(settings: TuneSettings, workload: Workload, device: Device, backend_name: str) -> Path:
    return Path(settings.state_dir) / f"{run_stem(workload, device, backend_name)}.state.json"


def without_run(corpus: CorpusColumns, run_id: str) -> CorpusColumns:
    """The corpus without the records a run wrote itself, so a resumed run learns from what it started with."""
    if corpus.source is None or len(corpus) == 0:
        return corpus
    prefix = f"amk tune {run_id} "
    mine = np.fromiter((isinstance(s, str) and s.startswith(prefix) for s in corpus.source), dtype=bool,
                       count=len(corpus))
    return corpus.take(~mine) if mine.any() else corpus


class _Session:
    """One tune session: the state, the policy rebuilt from it, and the record writer."""

    def __init__(self, target: TuneTarget, state: TuneState, settings: TuneSettings, store: Store | None,
                 state_path: Path | None, measurer: Measurer) -> None:
        self.target = target
        self.measurer = measurer
        self.state = state
        self.settings = settings
        self.store = store
        self.state_path = state_path
        self.records: list[Record] = []
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self.untried = np.ones(len(target.candidates), dtype=bool)
        self.policy: OrderingPolicy = make_policy(
            settings.policy, target.features, target.prior_scores, target.prior_uncertainty,
            exploration=settings.exploration, epsilon=settings.epsilon, kappa=settings.kappa, seed=state.seed,
            trees=settings.trees)
        for trial in state.trials:
            self._mark(trial)
        self.started = time.monotonic()
        self.elapsed_before = state.elapsed_s

    def _mark(self, trial: Trial) -> None:
        i = self.target.index.get(trial.key)
        if i is None:
            return
        self.untried[i] = False
        passed = trial.verdict == Verdict.PASS.value and trial.latency_us
        self.policy.observe(i, math.log(trial.latency_us) if passed else None)

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _record(self, knobs: Mapping[str, Any], measurement: Measurement, role: str, evaluation: int,
                kept: bool | None = None) -> None:
        target = self.target
        extra: dict[str, Any] = {"run": self.state.run_id, "evaluation": evaluation, "role": role}
        if kept is not None:
            extra["kept"] = kept
        record = Record(
            workload=target.workload, device=target.device,
            config=target.backend.record_config(target.workload, knobs), measurement=measurement,
            provenance=Provenance(backend=target.backend.name, backend_version=target.backend.version,
                                  timestamp=time.time(), notes=f"amk tune ({role})",
                                  source=f"amk tune {self.state.run_id} #{evaluation} {role}", extra=extra),
        )
        self.records.append(record)
        if self.store is not None:
            self.store.append([record])

    def _measure(self, knobs: Mapping[str, Any]) -> Measurement:
        timeout = self.settings.timeout_s or None
        m = self.measurer.measure(self.target.workload, self.target.device, knobs, timeout)
        self.state.measurements += 1
        return floor_guard(m, self.target.floor_us, self.settings.floor_tolerance)

    def _ab(self, incumbent: Mapping[str, Any], challenger: Mapping[str, Any], evaluation: int) -> tuple[bool, float]:
        inc, cha = [], []
        for r in range(self.settings.ab_rounds):
            pair = [("ab-incumbent", incumbent, inc), ("ab-challenger", challenger, cha)]
            for role, knobs, sink in (pair if r % 2 == 0 else pair[::-1]):
                m = self._measure(knobs)
                self._record(knobs, m, role, evaluation)
                if m.verdict is Verdict.PASS:
                    sink.append(m.latency_us)
        decision = ab_decision(inc, cha, min_gain=self.settings.min_gain, noise_factor=self.settings.ab_noise)
        log.info("evaluation %d: %s", evaluation, decision.reason)
        return decision.keep, decision.challenger_us or 0.0

    def step(self) -> Trial:
        state, target = self.state, self.target
        index = None
        while state.seed_queue and index is None:
            key = state.seed_queue.pop(0)
            i = target.index.get(key)
            if i is not None and self.untried[i]:
                index = i
        if index is None:
            index = self.policy.choose(self.untried, self.rng)
        knobs = target.candidates[index]
        evaluation = len(state.trials) + 1
        m = self._measure(knobs)
        kept = False
        latency = m.latency_us
        if m.verdict is Verdict.PASS and latency is not None:
            if state.incumbent_us is None:
                kept = True
            elif latency < state.incumbent_us * (1 - self.settings.min_gain):
                measured = target.backend.measurement_kind is MeasurementKind.MEASURED
                if measured and self.settings.ab_rounds > 0:
                    incumbent = target.candidates[target.index[state.incumbent_key]]
                    kept, ab_latency = self._ab(incumbent, knobs, evaluation)
                    latency = ab_latency if kept and ab_latency else latency
                else:
                    kept = True
        self._record(knobs, m, "candidate", evaluation, kept)
        trial = Trial(evaluation, target.keys[index], m.verdict.value, m.latency_us, kept, round(self.elapsed, 3))
        state.trials.append(trial)
        if kept:
            state.incumbent_key, state.incumbent_us = target.keys[index], latency
        self._mark(trial)
        self.save()
        return trial

    def save(self) -> None:
        self.state.rng_state = self.rng.bit_generator.state
        self.state.elapsed_s = round(self.elapsed, 3)
        if self.state_path is not None:
            self.state.save(self.state_path)


def _json_safe_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return json.loads(json.dumps(rng.bit_generator.state))


def adopt_from_store(state: TuneState, target: TuneTarget, store: Store | None) -> int:
    """Take back candidate records of this run the state missed (killed between append and save)."""
    if store is None:
        return 0
    from amk.core.store import CorpusQuery

    known = len(state.trials)
    found: dict[int, Record] = {}
    query = CorpusQuery(device=target.device.name, workload_kind=target.workload.kind,
                        workload_name=target.workload.name)
    for record in store.query(query):
        extra = record.provenance.extra
        if extra.get("run") == state.run_id and extra.get("role") == "candidate" and extra.get("evaluation", 0) > known:
            found[int(extra["evaluation"])] = record
    adopted = 0
    for evaluation in sorted(found):
        if evaluation != len(state.trials) + 1:
            break
        record = found[evaluation]
        try:
            key = config_key(target.space.canonical(target.backend.knob_config(target.workload, record.config)))
        except InvalidConfigError:
            break
        m = record.measurement
        kept = bool(record.provenance.extra.get("kept"))
        state.trials.append(Trial(evaluation, key, m.verdict.value, m.latency_us, kept, state.elapsed_s))
        if key in state.seed_queue:
            state.seed_queue.remove(key)
        if kept:
            state.incumbent_key, state.incumbent_us = key, m.latency_us
        adopted += 1
    return adopted


def new_state(target: TuneTarget, seed: int) -> TuneState:
    return TuneState(
        run_id=uuid.uuid4().hex[:12], target=target.target_id, seed=seed,
        rng_state=_json_safe_rng_state(np.random.default_rng(seed)),
        seed_queue=list(target.seeds), warm_sources=list(target.seed_sources),
    )


def tune(target: TuneTarget, settings: TuneSettings, *, seed: int = 0, budget: int | None = None,
         minutes: float | None = None, store: Store | None = None, state_path: Path | None = None,
         resume: bool = False, progress: ProgressBar | None = None, stop_at_us: float | None = None,
         registry: Registry | None = None) -> TuneResult:
    """Run (or, with ``resume``, continue) the loop until ``budget`` evaluations or ``minutes`` have passed
    (or, with ``stop_at_us``, a config at least that fast was measured). In ``settings.isolation`` process
    mode, the worker rebuilds the backend through ``registry`` (the one it was created with; the
    process-wide registry by default)."""
    budget = settings.budget if budget is None else budget
    minutes = settings.minutes if minutes is None else minutes
    if budget <= 0 and minutes <= 0:
        raise ConfigError("give a budget of evaluations (--budget N) or a time limit (--minutes M) above 0.")
    if resume:
        if state_path is None:
            raise ConfigError("resuming needs the state file of the run; pass its path.")
        state = TuneState.load(state_path, target.target_id)
        state.sessions += 1
        state.stop_reason = None
        adopted = adopt_from_store(state, target, store)
        if adopted:
            log.info("resume: %d evaluation(s) found in the store after the last saved state", adopted)
    else:
        state = new_state(target, seed)
    measurer = make_measurer(target.backend, settings.isolation, registry)
    session = _Session(target, state, settings, store, state_path, measurer)
    session.save()
    limit_s = minutes * 60 if minutes > 0 else math.inf
    budget = budget if budget > 0 else len(target.candidates)
    progress = progress or ProgressBar(budget, enabled=False)
    progress.update(len(state.trials), state.incumbent_us)
    try:
        while True:
            if len(state.trials) >= budget:
                state.stop_reason = f"budget of {budget} evaluations reached"
                break
            if session.elapsed >= limit_s:
                state.stop_reason = f"time limit of {minutes:g} minutes reached"
                break
            if not session.untried.any():
                state.stop_reason = "every config of the search space was evaluated"
                break
            trial = session.step()
            if stop_at_us is not None and trial.verdict == "PASS" and trial.latency_us <= stop_at_us:
                state.stop_reason = f"a config within {stop_at_us:g} us was measured"
                break
            progress.update(len(state.trials), state.incumbent_us, trial.verdict if trial.verdict != "PASS" else "")
    finally:
        measurer.close()
        progress.close()
    session.save()
    return TuneResult(target, state, session.records, measurer.mode)
